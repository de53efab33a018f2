//! SIGKILL right after an add is acknowledged loses nothing.

use std::time::Duration;

use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn sigkill_after_a_sync_add_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "crash-test-key");
    server
        .add(
            "u",
            "c",
            json!([{"role": "user", "content": "The spare key is under the blue flowerpot."}]),
        )
        .await;
    server.kill();

    let server = Server::start(dir.path(), "crash-test-key");
    let (s, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "where is the spare key"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let list = v["data"]["memory_detail_list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert!(
        list[0]["memory_value"]
            .as_str()
            .unwrap()
            .contains("blue flowerpot")
    );
}

#[tokio::test]
async fn sigkill_after_an_async_add_is_acknowledged_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "crash-test-key");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, v) = server
            .post("add/message", json!({"user_id": "u", "conversation_id": "c",
                "messages": [{"role": "user", "content": format!("Reminder {i}: water the orchids on the balcony")}]}))
            .await;
        assert_eq!(s, 200, "{v}");
        tasks.push(v["data"]["task_id"].as_str().unwrap().to_string());
    }
    server.kill();

    let server = Server::start(dir.path(), "crash-test-key");
    for task in &tasks {
        let mut status = String::new();
        for _ in 0..300 {
            let (_, v) = server.post("get/status", json!({"task_id": task})).await;
            status = v["data"]["status"].as_str().unwrap_or_default().to_string();
            if status == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, "completed", "task {task} after restart");
    }
    let (_, v) = server
        .post("get/memory", json!({"user_id": "u", "size": 50}))
        .await;
    assert_eq!(
        v["data"]["total"], 20,
        "each acknowledged add made exactly one memory"
    );
    let (_, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "orchids balcony", "memory_limit_number": 25}),
        )
        .await;
    assert_eq!(
        v["data"]["memory_detail_list"].as_array().unwrap().len(),
        20
    );
}
