//! `memos serve --store postgres`: the real binary on the database that
//! `scripts/start-postgres.sh` started (`MEMOS_PG_URL`), over HTTP; its data outlives the
//! server, two servers on one database behave as one service, and a dead server's async
//! tasks are finished by the other, and `memos migrate` moves a data directory there and
//! back.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, memos, pg_url};

#[tokio::test]
async fn the_server_runs_on_postgres_and_its_data_outlives_it() {
    let Some(url) = pg_url("outlives").await else {
        return;
    };
    let first_dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        first_dir.path(),
        "pg-e2e-secret",
        &["--store", "postgres", "--store-url", &url],
    );
    let (status, v) = server
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "async_mode": false,
                   "messages": [{"role": "user", "content": "I keep bees on my roof."}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "bees roof"}),
        )
        .await;
    assert!(
        !v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{v}"
    );
    drop(server);
    // Another server, another data directory: the memories come from the database.
    let second_dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        second_dir.path(),
        "pg-e2e-secret",
        &["--store", "postgres", "--store-url", &url],
    );
    let (_, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "bees roof"}),
        )
        .await;
    let list = v["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|m| m["memory_value"].as_str().unwrap().contains("bees")),
        "{v}"
    );
}

#[tokio::test]
async fn two_servers_on_one_database_are_one_service_and_finish_each_others_tasks() {
    let Some(url) = pg_url("pair").await else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = ["--store", "postgres", "--store-url", url.as_str()];
    // A short lease, so the takeover below happens in about a second.
    let lease = ("MEMOS__STORE__TASK_LEASE_MS", "1500");
    // A's LLM never answers, so A's worker is stuck on its first task, its queue behind it,
    // when it dies: B must take over both kinds (memories written, and not yet extracted).
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let llm_url = format!("http://{}/v1", stall.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = stall.incoming().collect();
        drop(held);
    });
    let a = Server::start_env(
        dir_a.path(),
        "pair-secret",
        &flags,
        &[
            lease,
            ("MEMOS__LLM__BASE_URL", llm_url.as_str()),
            ("MEMOS__LLM__MODEL", "stalls"),
            ("MEMOS__LLM__TIMEOUT_MS", "600000"),
        ],
    );
    let b = Server::start_env(dir_b.path(), "pair-secret", &flags, &[lease]);

    // Written through one, found through the other at once, both ways.
    for (writer, reader, text, query) in [
        (&a, &b, "My sister Ana lives in Porto.", "Ana Porto"),
        (&b, &a, "I restore old sailing boats.", "sailing boats"),
    ] {
        writer
            .add("u", "c", json!([{"role": "user", "content": text}]))
            .await;
        let (_, v) = reader
            .post("search/memory", json!({"user_id": "u", "query": query}))
            .await;
        let list = v["data"]["memory_detail_list"].as_array().unwrap();
        assert!(
            list.iter()
                .any(|m| m["memory_value"].as_str().unwrap().contains(text)),
            "{v}"
        );
    }

    // A accepts async adds and dies; B finishes whatever A had not, each exactly once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, v) = a
            .post("add/message", json!({"user_id": "w", "conversation_id": "c",
                "messages": [{"role": "user", "content": format!("Reminder {i}: feed the koi in the pond")}]}))
            .await;
        assert_eq!(s, 200, "{v}");
        tasks.push(v["data"]["task_id"].as_str().unwrap().to_string());
    }
    a.kill();
    for task in &tasks {
        let mut status = String::new();
        for _ in 0..250 {
            let (_, v) = b.post("get/status", json!({"task_id": task})).await;
            status = v["data"]["status"].as_str().unwrap_or_default().to_string();
            if status == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, "completed", "task {task} after its server died");
    }
    let (_, v) = b
        .post("get/memory", json!({"user_id": "w", "size": 50}))
        .await;
    assert_eq!(
        v["data"]["total"], 20,
        "each acknowledged add made exactly one memory: {v}"
    );
}

#[tokio::test]
async fn migrate_moves_a_data_directory_to_postgres_and_back() {
    let Some(url) = pg_url("migrate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (first, back) = (dir.path().join("first"), dir.path().join("back"));
    memos(
        &["add", "--user", "u", "I grow saffron on my balcony."],
        &first,
    );
    let out = memos(
        &[
            "migrate",
            "--from",
            &format!("embedded:{}", first.display()),
            "--to",
            &format!("postgres:{url}"),
        ],
        &first,
    );
    assert!(out.starts_with("migrated "), "{out}");
    let server = Server::start_with(
        &dir.path().join("serve"),
        "migrate-secret",
        &["--store", "postgres", "--store-url", &url],
    );
    let (_, v) = server
        .post("search/memory", json!({"user_id": "u", "query": "saffron"}))
        .await;
    assert!(
        v["data"]["memory_detail_list"][0]["memory_value"]
            .as_str()
            .unwrap_or_default()
            .contains("saffron"),
        "{v}"
    );
    drop(server);
    memos(
        &[
            "migrate",
            "--from",
            &format!("postgres:{url}"),
            "--to",
            &format!("embedded:{}", back.display()),
        ],
        &first,
    );
    let found = memos(&["search", "--user", "u", "saffron"], &back);
    assert!(found.contains("saffron"), "{found}");
    // The target holds data now: migrating into it again is refused.
    let refused = std::process::Command::new(crate::common::BIN)
        .args([
            "migrate",
            "--from",
            &format!("embedded:{}", first.display()),
        ])
        .args(["--to", &format!("embedded:{}", back.display())])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
