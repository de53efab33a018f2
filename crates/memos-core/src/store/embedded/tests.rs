//! The embedded store's own tests: schema versions and migrations of real files.

use super::*;
use crate::store::StoreScan;

fn version(dir: &Path) -> i64 {
    Connection::open(dir.join("memos.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// A file in the first release's schema, with a memory and a message in it.
fn first_release_file(dir: &Path) {
    let c = Connection::open(dir.join("memos.db")).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO memories (id, project_id, user_id, conversation_id, memory_key, \
         memory_value, memory_type, memory_time, status, confidence, tags, info, agent_id, \
         app_id, sources, create_time, update_time) VALUES ('m1', 'p', 'u', 'c', 'k', \
         'I keep bees.', 'UserMemory', NULL, 'activated', 0.9, '[]', '{}', NULL, NULL, '[]', 1, 1); \
         INSERT INTO messages (id, message_id, project_id, user_id, conversation_id, role, \
         name, content, chat_time, create_time, task_id) VALUES ('x1', 'x1', 'p', 'u', 'c', \
         'user', NULL, 'I keep bees.', 1, 1, 't1');",
    )
    .unwrap();
}

#[tokio::test]
async fn an_older_data_directory_is_upgraded_on_open_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    first_release_file(dir.path());
    assert_eq!(version(dir.path()), 1);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(version(dir.path()), SCHEMA_VERSION);
    let m = store.get_memories("p", &["m1".into()]).await.unwrap();
    assert_eq!(m[0].value, "I keep bees.");
    assert_eq!(m[0].reasoning, None);
    let (msgs, _) = store.scan_messages(None, 10).await.unwrap();
    assert_eq!(msgs[0].raw, None);
    drop(store);
    // Today's file opens again as it is.
    EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(version(dir.path()), SCHEMA_VERSION);
}

#[test]
fn a_file_an_earlier_memos_upgraded_by_probing_columns_opens() {
    let dir = tempfile::tempdir().unwrap();
    first_release_file(dir.path());
    let c = Connection::open(dir.path().join("memos.db")).unwrap();
    c.execute_batch(MIGRATIONS[0].sql).unwrap();
    c.execute_batch(MIGRATIONS[1].sql).unwrap();
    drop(c);
    EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(version(dir.path()), SCHEMA_VERSION);
}

#[test]
fn a_file_from_a_newer_memos_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    Connection::open(dir.path().join("memos.db"))
        .unwrap()
        .execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = EmbeddedStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("newer memos"), "{err}");
}
