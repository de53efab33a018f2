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
