//! The PostgreSQL store against a real server: the whole conformance suite, each test in a
//! schema of its own. The server comes from `scripts/start-postgres.sh` (CI starts it and
//! sets `MEMOS_PG_URL`); without it these tests skip locally and fail in CI.

use std::sync::Arc;

use memos_core::store::{MemoryStore, PostgresStore, tests_support};

/// A store in a fresh schema, or `None` when no server is configured (outside CI).
pub async fn pg_store() -> Option<(Arc<dyn MemoryStore>, ())> {
    let url = tests_support::postgres_schema_url().await?;
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    Some((Arc::new(store), ()))
}

mod conformance {
    use super::pg_store;

    memos_core::store_conformance!(match pg_store().await {
        Some(s) => s,
        None => return,
    });
}

/// Everything a store holds, in write order, for comparing two stores.
#[derive(Debug, PartialEq)]
struct Dump {
    memories: Vec<memos_core::model::Memory>,
    messages: Vec<memos_core::model::Message>,
    tasks: Vec<memos_core::model::Task>,
    history: Vec<memos_core::model::MemoryChange>,
    embeddings: Vec<memos_core::store::Embedding>,
    keys: Vec<memos_core::model::ApiKey>,
    docs: Vec<memos_core::model::Doc>,
}

async fn dump(s: &dyn MemoryStore) -> Dump {
    macro_rules! all {
        ($scan:ident) => {{
            let (mut out, mut cursor) = (Vec::new(), None);
            loop {
                let (page, next) = s.$scan(cursor, 3).await.unwrap();
                if page.is_empty() {
                    break out;
                }
                out.extend(page);
                cursor = next;
            }
        }};
    }
    Dump {
        memories: all!(scan_memories),
        messages: all!(scan_messages),
        tasks: all!(scan_tasks),
        history: all!(scan_history),
        embeddings: all!(scan_embeddings),
        keys: s.list_keys().await.unwrap(),
        docs: s.list_docs(Default::default()).await.unwrap(),
    }
}

/// `memos migrate`'s copy: embedded → PostgreSQL → embedded gives back exactly what went
/// in, soft-deleted and archived memories, running tasks, revoked keys and vectors too.
#[tokio::test]
async fn migration_there_and_back_is_lossless() {
    use memos_core::model::*;
    use memos_core::store::tests_support::{memory, memory_in, message};
    use memos_core::store::{DocStore, EmbeddedStore, Embedding, KeyStore, WriteBatch, copy_store};

    let Some(url) = tests_support::postgres_schema_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = EmbeddedStore::open(&dir.path().join("a")).unwrap();
    let scope = Scope::new("p", "u");
    let mut memories: Vec<Memory> = (0..7)
        .map(|i| memory("u", "c", &format!("I planted {i} lemon trees 种了柠檬树")))
        .collect();
    memories[1].status = MemoryStatus::Deleted;
    memories[2].status = MemoryStatus::Archived;
    memories[3].memory_type = MemoryType::UserMemory;
    memories[3].reasoning = Some("stated outright".into());
    memories[3].info.insert("k".into(), serde_json::json!(1.5));
    memories.push(memory_in("q", "u", "c", "another project"));
    let vectors: Vec<Embedding> = memories
        .iter()
        .take(5)
        .enumerate()
        .map(|(i, m)| Embedding {
            memory_id: m.id.clone(),
            scope: m.scope.clone(),
            model: if i % 2 == 0 { "m1" } else { "m2" }.into(),
            vector: vec![0.1 + i as f32 / 7.0, -0.333_333_34, 1e-7, 0.0],
        })
        .collect();
    let task = |status| Task {
        id: uuid::Uuid::new_v4().to_string(),
        scope: scope.clone(),
        status,
        payload: serde_json::json!({"conversation_id": "c"}),
        memory_ids: vec![memories[0].id.clone()],
        error: None,
        create_time: 5,
        update_time: 6,
    };
    source
        .write(WriteBatch {
            messages: (0..5)
                .map(|i| message(&scope, "c", &format!("message {i}"), i))
                .collect(),
            upsert_memories: memories.clone(),
            task: Some(task(TaskStatus::Completed)),
            embeddings: vectors,
            history: vec![MemoryChange {
                memory_id: memories[2].id.clone(),
                scope: scope.clone(),
                time: 9,
                kind: ChangeKind::Superseded,
                related_id: Some(memories[3].id.clone()),
                before: Some("old".into()),
                note: "new".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    source
        .write(WriteBatch {
            task: Some(task(TaskStatus::Running)),
            ..Default::default()
        })
        .await
        .unwrap();
    let (key, _) = memos_core::auth::create_key(&source, "p", "ci")
        .await
        .unwrap();
    memos_core::auth::create_key(&source, "q", "other")
        .await
        .unwrap();
    source.revoke_key(&key.id, 42).await.unwrap();
    let doc = |kind: &str, user: &str, id: &str| Doc {
        kind: kind.into(),
        project_id: "p".into(),
        user_id: user.into(),
        id: id.into(),
        body: serde_json::json!({"名字": {"value": "Ana", "algorithm_updatable": false}}),
        create_time: 3,
        update_time: 4,
    };
    source
        .put_docs(vec![
            doc("profile_template", "", "t1"),
            doc("profile", "u", "t1"),
        ])
        .await
        .unwrap();

    let pg = PostgresStore::connect(&url, 4).await.unwrap();
    let copied = copy_store(&source, &pg, &|_| {}).await.unwrap();
    assert_eq!((copied.memories, copied.messages, copied.tasks), (8, 5, 2));
    assert_eq!((copied.history, copied.embeddings, copied.keys), (1, 5, 2));
    assert_eq!(copied.docs, 2);
    let back = EmbeddedStore::open(&dir.path().join("b")).unwrap();
    copy_store(&pg, &back, &|_| {}).await.unwrap();
    let original = dump(&source).await;
    assert_eq!(dump(&pg).await, original);
    assert_eq!(dump(&back).await, original);
    // Never into a store that holds data.
    assert!(copy_store(&source, &back, &|_| {}).await.is_err());
}

/// Memories written before the lexical index moved into the database (no `terms`) get their
/// terms when a server connects, and are found by the database's BM25 like any other.
#[tokio::test]
async fn older_rows_get_their_terms_on_connect() {
    use memos_core::search::{TimeRange, query_terms};
    use memos_core::store::WriteBatch;
    use memos_core::store::tests_support::memory;

    let Some(url) = tests_support::postgres_schema_url().await else {
        return;
    };
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    let m = memory("u", "c", "我在周末去爬山 and I bake sourdough bread");
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("UPDATE memories SET terms = NULL")
        .await
        .unwrap();
    async fn search(s: &PostgresStore, q: &str) -> Vec<memos_core::search::Candidate> {
        let scope = memos_core::model::Scope::new("p", "u");
        memos_core::store::StoreSearch::lexical(
            s,
            &scope,
            &query_terms(q),
            None,
            TimeRange::default(),
            5,
            std::time::Instant::now(),
        )
        .await
        .unwrap()
    }
    assert!(search(&store, "爬山").await.is_empty(), "no terms, no hit");
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    for q in ["爬山", "baking bread"] {
        let hits = search(&store, q).await;
        assert_eq!(hits.len(), 1, "{q}");
        assert_eq!(hits[0].id, m.id);
    }
}

/// TLS as libpq's `sslmode` and `sslrootcert` ask (issue 15), against a real server that
/// speaks TLS with a certificate for `localhost` signed by a test CA
/// (`scripts/start-postgres-tls.sh`; `MEMOS_PG_TLS_DIR` names its directory).
#[tokio::test]
async fn tls_follows_sslmode_and_sslrootcert() {
    let Some(dir) = std::env::var_os("MEMOS_PG_TLS_DIR").map(std::path::PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start the TLS server (scripts/start-postgres-tls.sh, run by scripts/test.sh)"
        );
        eprintln!("skipping: MEMOS_PG_TLS_DIR is not set");
        return;
    };
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let ca = dir.join("ca.crt");
    let other = dir.join("other-ca.crt");
    let url = |host: &str, query: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?{query}",
            port.trim()
        )
    };
    let check = |u: String| async move { PostgresStore::check_connection(&u).await };

    // The CA that signed the server's certificate, and its name: verified and encrypted.
    let full = check(url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .await;
    assert!(full.as_ref().is_ok_and(|c| c.tls), "{full:?}");
    // Another CA: refused, whatever the mode that checks the chain.
    for mode in ["verify-full", "verify-ca"] {
        let wrong = check(url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={}", other.display()),
        ))
        .await;
        assert!(
            wrong.is_err(),
            "{mode} with a CA that signed nothing: {wrong:?}"
        );
    }
    // The certificate names `localhost`, not 127.0.0.1: verify-ca accepts (chain only),
    // verify-full refuses (name too).
    let by_ip = |mode: &str| {
        url(
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", ca.display()),
        )
    };
    assert!(check(by_ip("verify-ca")).await.is_ok_and(|c| c.tls));
    assert!(check(by_ip("verify-full")).await.is_err());
    // require: encrypted without checking; prefer (libpq's default, and ours): encrypted
    // when offered; disable: plain.
    assert!(
        check(url("127.0.0.1", "sslmode=require"))
            .await
            .is_ok_and(|c| c.tls)
    );
    assert!(check(url("127.0.0.1", "")).await.is_ok_and(|c| c.tls));
    assert!(
        check(url("127.0.0.1", "sslmode=disable"))
            .await
            .is_ok_and(|c| !c.tls)
    );
    // A mode libpq does not have is a configuration error that names it.
    let bad = check(url("127.0.0.1", "sslmode=sometimes"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("sslmode"), "{bad}");
}

/// A fresh schema's URL and two stores on it, as two servers: one searching in SQL, one
/// keeping search copies of up to `bytes` in RAM. `None` without a test server.
async fn two_servers(bytes: u64) -> Option<(String, PostgresStore, PostgresStore)> {
    use memos_core::store::{SearchCopies, StoreSearch};
    let url = tests_support::postgres_schema_url().await?;
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    let copies = PostgresStore::connect(&url, 2).await.unwrap();
    copies
        .prepare(
            None,
            SearchCopies {
                bytes,
                exact_scan_rows: 20_000,
            },
        )
        .await
        .unwrap();
    Some((url, store, copies))
}

/// BM25 from the postings table ranks exactly as the scan of the matching rows does (the
/// path every filtered or dated search takes), also when the best `4 · limit + 50` rows are
/// cut from many, when most of the best matches are archived, and after edits and deletes.
/// A second server's copy in RAM ranks the same, with the same scores, after it caught up
/// with those edits and deletes from the change log.
#[tokio::test]
async fn postings_rank_as_the_full_scan_does() {
    use memos_core::filter::Filter;
    use memos_core::model::{MemoryStatus, Scope};
    use memos_core::search::{TimeRange, query_terms};
    use memos_core::store::tests_support::memory;
    use memos_core::store::{StoreSearch, WriteBatch};
    use std::time::Instant;

    let Some((_, store, copies)) = two_servers(64 << 20).await else {
        return;
    };
    const WORDS: [&str; 12] = [
        "garden", "violin", "harbor", "lantern", "orchard", "meadow", "canyon", "quartz", "falcon",
        "ember", "willow", "marble",
    ];
    let mut ms = Vec::new();
    for i in 0..400usize {
        // Lengths and frequencies vary, so scores spread and tie rarely.
        let words: Vec<&str> = (0..(3 + i % 7))
            .map(|j| WORDS[(i * 7 + j * j * 3 + j) % WORDS.len()])
            .collect();
        let mut m = memory("u", "c", &format!("note {i}: {}", words.join(" ")));
        if i % 5 == 0 {
            m.status = MemoryStatus::Archived;
        }
        if i % 3 == 0 {
            m.info.insert("scene".into(), serde_json::json!("chat"));
        }
        ms.push(m);
    }
    // Many short, strong matches for "falcon", all archived but two: the fast path's best
    // rows are nearly all archived, so it must fall back to the scan.
    for i in 0..120 {
        let mut m = memory("u", "c", &format!("falcon falcon {i}"));
        m.status = if i < 2 {
            MemoryStatus::Activated
        } else {
            MemoryStatus::Archived
        };
        ms.push(m);
    }
    store
        .write(WriteBatch {
            upsert_memories: ms.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let scope = Scope::new("p", "u");
    // The copy loads now, before the edit and the delete, which it must catch up with.
    let before = copies
        .lexical(
            &scope,
            &query_terms("harbor canyon orchard"),
            None,
            TimeRange::default(),
            1_000,
            Instant::now(),
        )
        .await
        .unwrap();
    assert!(before.iter().any(|c| c.id == ms[2].id));
    // An edit and a delete after the first write, so the triggers' updates are tested too.
    let mut edited = ms[1].clone();
    edited.value = "note edited: zeppelin zeppelin garden".into();
    store
        .write(WriteBatch {
            upsert_memories: vec![edited.clone()],
            delete_memories: vec![ms[2].id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let everything = TimeRange {
        from: Some(0),
        to: None,
    };
    for q in [
        "garden violin",
        "harbor lantern orchard",
        "meadow",
        "falcon",
        "quartz ember willow marble canyon",
        "zeppelin",
    ] {
        let terms = query_terms(q);
        for limit in [5, 10, 30] {
            let now = Instant::now();
            let fast = store
                .lexical(&scope, &terms, None, TimeRange::default(), limit, now)
                .await
                .unwrap();
            let scan = store
                .lexical(&scope, &terms, None, everything, limit, now)
                .await
                .unwrap();
            let ids = |c: &[memos_core::search::Candidate]| {
                c.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
            };
            assert_eq!(ids(&fast), ids(&scan), "{q} @{limit}");
            for (a, b) in fast.iter().zip(&scan) {
                assert!((a.score - b.score).abs() < 1e-5, "{q}: {a:?} {b:?}");
            }
            // The copy in RAM, current and as of long ago (archived ones count then).
            let long_ago = TimeRange::until(Some(1));
            for (time, sql) in [
                (TimeRange::default(), fast.clone()),
                (
                    long_ago,
                    store
                        .lexical(&scope, &terms, None, long_ago, limit, now)
                        .await
                        .unwrap(),
                ),
            ] {
                let ram = copies
                    .lexical(&scope, &terms, None, time, limit, Instant::now())
                    .await
                    .unwrap();
                assert_eq!(ids(&ram), ids(&sql), "copy: {q} @{limit} {time:?}");
                for (a, b) in ram.iter().zip(&sql) {
                    assert!((a.score - b.score).abs() < 1e-5, "{q}: {a:?} {b:?}");
                    assert!(
                        (a.relativity - b.relativity).abs() < 1e-5,
                        "{q}: {a:?} {b:?}"
                    );
                }
            }
            // Filters: on the fields the copy keeps (type, tags, times) it decides them;
            // on `info` it takes the ids from the database.
            for f in [
                serde_json::json!({"memory_type": "LongTermMemory"}),
                serde_json::json!({"tags": {"contains": "GARDEN"}}),
                serde_json::json!({"or": [{"tags": {"contains": "falcon"}}, {"create_time": {"lt": "2000-01-01"}}]}),
                serde_json::json!({"scene": "chat"}),
            ] {
                let filter = Filter::parse(&f).unwrap().unwrap();
                let sql = store
                    .lexical(
                        &scope,
                        &terms,
                        Some(&filter),
                        TimeRange::default(),
                        limit,
                        now,
                    )
                    .await
                    .unwrap();
                let ram = copies
                    .lexical(
                        &scope,
                        &terms,
                        Some(&filter),
                        TimeRange::default(),
                        limit,
                        Instant::now(),
                    )
                    .await
                    .unwrap();
                assert_eq!(ids(&ram), ids(&sql), "filtered copy: {f} {q} @{limit}");
            }
        }
    }
    assert!(copies.copies_bytes().unwrap() > 0);
    let zeppelin = store
        .lexical(
            &scope,
            &query_terms("zeppelin"),
            None,
            TimeRange::default(),
            5,
            Instant::now(),
        )
        .await
        .unwrap();
    assert_eq!(zeppelin.len(), 1);
    assert_eq!(zeppelin[0].id, edited.id);
    let falcons = store
        .lexical(
            &scope,
            &query_terms("falcon"),
            None,
            TimeRange::default(),
            3,
            Instant::now(),
        )
        .await
        .unwrap();
    assert!(falcons.iter().all(|c| c.id != ms[2].id));
}

/// Statements are kept prepared per connection up to a cap; past it (here, lists whose
/// filters all differ in shape on one connection) they still run, unprepared, with the
/// same answers.
#[tokio::test]
async fn statements_past_the_prepared_cap_still_run() {
    use memos_core::filter::{Condition, Filter, Logic};
    use memos_core::model::Scope;
    use memos_core::store::tests_support::memory;
    use memos_core::store::{ListQuery, WriteBatch};

    let Some(url) = tests_support::postgres_schema_url().await else {
        return;
    };
    let store = PostgresStore::connect(&url, 1).await.unwrap();
    let mut m = memory("u", "c", "a note tagged twice");
    m.tags = vec!["t1".into(), "t7".into()];
    store
        .write(WriteBatch {
            upsert_memories: vec![m.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let scope = Scope::new("p", "u");
    for n in 1..=300usize {
        // `t{n}` or any of the tags before it, down to `t1`: a new text each time.
        let filter = Filter {
            logic: Logic::Or,
            conditions: (0..n)
                .map(|i| Condition::TagContains(format!("t{}", n - i)))
                .collect(),
        };
        let page = store
            .list_memories(
                &scope,
                &ListQuery {
                    filter: Some(filter),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.total, 1, "n = {n}");
        assert_eq!(page.items[0].id, m.id, "n = {n}");
    }
}

/// A copy in RAM lists a user's memories with a tag (what the preference channel asks of
/// every search) as the database does: current ones only, this user's only, the tag in
/// any case, and every write from another server acknowledged before the call. Without a
/// copy already held, or with more matches than the cap, the caller is sent to the list.
#[tokio::test]
async fn a_copy_lists_tagged_memories_as_the_database_does() {
    use memos_core::filter::{Condition, Filter};
    use memos_core::model::{MemoryStatus, Scope};
    use memos_core::search::{TimeRange, query_terms};
    use memos_core::store::tests_support::{memory, memory_in};
    use memos_core::store::{StoreSearch, WriteBatch};
    use std::time::Instant;

    let Some((_, store, copies)) = two_servers(16 << 20).await else {
        return;
    };
    let tagged = |m: &mut memos_core::model::Memory, tag: &str| m.tags = vec![tag.into()];
    let mut ms = Vec::new();
    for i in 0..12 {
        let mut m = memory("u", "c", &format!("likes item {i}"));
        match i % 4 {
            0 => tagged(&mut m, "Preference"),
            1 => tagged(&mut m, "preference"),
            2 => tagged(&mut m, "travel"),
            _ => {}
        }
        if i == 4 {
            m.status = MemoryStatus::Archived;
        }
        if i == 8 {
            m.status = MemoryStatus::Deleted;
        }
        ms.push(m);
    }
    let mut elsewhere = memory("v", "c", "another user's preference");
    tagged(&mut elsewhere, "Preference");
    let mut other_project = memory_in("q", "u", "c", "another project's preference");
    tagged(&mut other_project, "Preference");
    ms.extend([elsewhere, other_project]);
    store
        .write(WriteBatch {
            upsert_memories: ms.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let scope = Scope::new("p", "u");
    let filter = Filter::only(Condition::TagContains("preference".into()));
    let listed = |cap: usize| {
        let (copies, scope, filter) = (&copies, &scope, &filter);
        async move {
            let mut ids = copies
                .matching_ids(scope, filter, cap, Instant::now())
                .await
                .unwrap()?;
            ids.sort();
            Some(ids)
        }
    };
    assert_eq!(listed(100).await, None, "no copy held yet");
    copies
        .lexical(
            &scope,
            &query_terms("likes"),
            None,
            TimeRange::default(),
            5,
            Instant::now(),
        )
        .await
        .unwrap();
    // Items 0, 1, 4 (archived), 5 and 9; 8 is deleted.
    let expect = |ms: &[memos_core::model::Memory], idx: &[usize]| {
        let mut ids: Vec<String> = idx.iter().map(|&i| ms[i].id.clone()).collect();
        ids.sort();
        Some(ids)
    };
    assert_eq!(listed(100).await, expect(&ms, &[0, 1, 4, 5, 9]));
    assert_eq!(listed(4).await, None, "more than the cap");
    // Another server tags one more and deletes one: the next call sees both.
    let mut more = memory("u", "c", "likes tea");
    tagged(&mut more, "PREFERENCE");
    store
        .write(WriteBatch {
            upsert_memories: vec![more.clone()],
            delete_memories: vec![ms[0].id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    ms.push(more);
    assert_eq!(listed(100).await, expect(&ms, &[1, 4, 5, 9, ms.len() - 1]));
}

/// The change log is pruned by the writes themselves (every 1,000 revisions, keeping
/// 10,000), and a copy whose revision is older than what the log still holds loads again
/// whole instead of missing what was pruned.
#[tokio::test]
async fn a_copy_older_than_the_pruned_change_log_loads_again() {
    use memos_core::model::Scope;
    use memos_core::search::{TimeRange, query_terms};
    use memos_core::store::tests_support::memory;
    use memos_core::store::{StoreSearch, WriteBatch};
    use std::time::Instant;

    let Some((url, store, copies)) = two_servers(16 << 20).await else {
        return;
    };
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let write = |batch: WriteBatch| {
        let store = store.clone();
        async move { store.write(batch).await.unwrap() }
    };
    let scope = Scope::new("p", "u");
    let found = || async {
        let mut ids: Vec<String> = copies
            .lexical(
                &scope,
                &query_terms("zeppelin"),
                None,
                TimeRange::default(),
                10,
                Instant::now(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    };
    let a = memory("u", "c", "a zeppelin over the harbor");
    write(WriteBatch {
        upsert_memories: vec![a.clone()],
        ..Default::default()
    })
    .await;
    assert_eq!(found().await, std::slice::from_ref(&a.id), "the copy loads");

    // The next write takes revision 11,000: it prunes what is 10,000 revisions older.
    admin
        .batch_execute(
            "INSERT INTO memos_changes VALUES (999, 'p', 'u', 'old'), (1000, 'p', 'u', 'old'), \
             (1001, 'p', 'u', 'kept'); \
             UPDATE memos_meta SET value = 10999 WHERE key = 'revision'",
        )
        .await
        .unwrap();
    let b = memory("u", "c", "a second zeppelin, red");
    write(WriteBatch {
        upsert_memories: vec![b.clone()],
        delete_memories: vec![a.id.clone()],
        ..Default::default()
    })
    .await;
    let left: Vec<String> = admin
        .query(
            "SELECT memory_id FROM memos_changes WHERE memory_id IN ('old', 'kept')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["kept"]);
    let floor: i64 = admin
        .query_one(
            "SELECT value FROM memos_meta WHERE key = 'changes_floor'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(floor, 1000);

    // Pretend the log lost this write too (pruned further than the copy reaches): the copy,
    // at a revision below the floor, must load again and still see it.
    admin
        .batch_execute(
            "DELETE FROM memos_changes WHERE revision >= 11000; \
             UPDATE memos_meta SET value = 11000 WHERE key = 'changes_floor'",
        )
        .await
        .unwrap();
    assert_eq!(
        found().await,
        std::slice::from_ref(&b.id),
        "the edit and the delete are in"
    );
}
