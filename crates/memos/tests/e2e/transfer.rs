//! `memos export` beside a serving server and `memos import` into another data directory
//! (issue 15): the user's memories come back with their ids and their vectors, searchable
//! by meaning at once (nothing left for the embedder), and a second import is refused.

use std::process::Command;

use serde_json::json;

use crate::common::{BIN, Server};

#[test]
fn an_export_taken_while_serving_imports_into_another_deployment() {
    let a = tempfile::tempdir().unwrap();
    let server = Server::start(a.path(), "transfer-key");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(server.add(
        "alice",
        "c1",
        json!([
            {"role": "user", "content": "I live in Lisbon with my two cats."},
            {"role": "user", "content": "My sister Ana is getting married in June."}
        ]),
    ));
    let file = a.path().join("alice.jsonl");
    // Beside the running server: export reads the store only.
    let out = Command::new(BIN)
        .args(["export", "--user", "alice", "--vectors", "--out"])
        .arg(&file)
        .arg("--data-dir")
        .arg(a.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("exported ") && said.contains(" vectors"),
        "{said}"
    );
    let (_, listed) = rt.block_on(server.post("get/memory", json!({"user_id": "alice"})));
    server.kill();

    let b = tempfile::tempdir().unwrap();
    let import = || {
        Command::new(BIN)
            .arg("import")
            .arg(&file)
            .arg("--data-dir")
            .arg(b.path())
            .env("MEMOS__EMBED__MODEL_DIR", crate::common::e5_dir())
            .env("MEMOS_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = import();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = import();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // MEMOS_API_KEY seeds the default project, where the import went.
    let server = Server::start(b.path(), "transfer-key");
    let (_, relisted) = rt.block_on(server.post("get/memory", json!({"user_id": "alice"})));
    assert_eq!(
        relisted["data"]["memory_detail_list"], listed["data"]["memory_detail_list"],
        "the memories came back as they were"
    );
    // The vectors came along: nothing waits for the embedder.
    let health: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("{}/health", server.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    if !health["search"]["dense"]
        .as_str()
        .unwrap()
        .starts_with("off")
    {
        assert_eq!(health["embedding_backlog"], 0, "{health}");
    }
    let (_, found) = rt.block_on(server.post(
        "search/memory",
        json!({"user_id": "alice", "query": "a wedding in the family"}),
    ));
    let first = &found["data"]["memory_detail_list"][0]["memory_value"];
    assert!(first.as_str().unwrap().contains("married"), "{found}");
    server.kill();
}

/// `memos backup` while the server keeps taking writes: the copy is the store as of one
/// moment (every memory listed then, none added after), and a server started on it (the
/// restore) rebuilds its index and answers searches. A non-empty target is refused.
#[test]
fn a_backup_taken_while_serving_restores_to_a_working_server() {
    let a = tempfile::tempdir().unwrap();
    let server = Server::start(a.path(), "backup-test-key");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for i in 0..20 {
        rt.block_on(server.add(
            "alice",
            &format!("c{i}"),
            json!([{"role": "user", "content": format!("Note {i}: I planted {i} tulips in the garden.")}]),
        ));
    }
    let list = |s: &Server| {
        let (_, v) = rt.block_on(s.post("get/memory", json!({"user_id": "alice", "size": 50})));
        let mut ids: Vec<String> = v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let before = list(&server);
    let dest = tempfile::tempdir().unwrap();
    let backup_dir = dest.path().join("backup");
    let backup = |into: &std::path::Path| {
        Command::new(BIN)
            .arg("backup")
            .arg(into)
            .arg("--data-dir")
            .arg(a.path())
            .output()
            .unwrap()
    };
    // Writes keep landing while the backup runs.
    let writer =
        {
            let url = server.base();
            std::thread::spawn(move || {
                let http = reqwest::Client::new();
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    for i in 0..10 {
                        let _ = http
                        .post(format!("{url}/add/message"))
                        .header("Authorization", "Token backup-test-key")
                        .json(&json!({"user_id": "bob", "conversation_id": "w", "async_mode": false,
                            "messages": [{"role": "user", "content": format!("Busy write {i}.")}]}))
                        .send()
                        .await;
                    }
                })
            })
        };
    let out = backup(&backup_dir);
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = backup(&backup_dir);
    assert!(
        !again.status.success(),
        "a non-empty target was overwritten"
    );
    rt.block_on(server.add(
        "alice",
        "late",
        json!([{"role": "user", "content": "After the backup I bought a red bicycle."}]),
    ));
    server.kill();

    let restored = Server::start(&backup_dir, "backup-test-key");
    assert_eq!(list(&restored), before, "the copy holds alice as she was");
    let (_, found) = rt.block_on(restored.post(
        "search/memory",
        json!({"user_id": "alice", "query": "tulips in the garden"}),
    ));
    assert!(
        !found["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the rebuilt index answers: {found}"
    );
    let (_, late) = rt.block_on(restored.post(
        "search/memory",
        json!({"user_id": "alice", "query": "red bicycle"}),
    ));
    assert!(
        !late.to_string().contains("bicycle"),
        "a memory added after the backup is in it: {late}"
    );
}
