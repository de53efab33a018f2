//! Issue 13 regressions: inputs that used to panic the server, and a deleted memory that
//! came back when an edit raced its delete.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::TestServer;

const POISON: [&str; 4] = [
    "I adopted a puppy 100000000 days ago.",
    "I moved 99999999999999 weeks ago.",
    "我100000000天前搬家了。",
    "We met 9223372036854775807 years ago.",
];

#[tokio::test]
async fn issue_13_huge_dates_answer_in_sync_adds_async_adds_and_searches() {
    let s = TestServer::new().await;
    for text in POISON {
        s.add("u", "c", json!([{"role": "user", "content": text}]))
            .await;
        let (st, v) = s
            .post(
                "add/message",
                json!({"user_id": "u", "conversation_id": "c2",
                       "messages": [{"role": "user", "content": text}]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let task = v["data"]["task_id"].as_str().unwrap().to_string();
        assert_eq!(wait_task(&s, &task).await, "completed", "{text}");
        s.search(json!({"user_id": "u", "query": text})).await;
    }
    // The worker still takes work after all of them.
    let (_, v) = s
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c3",
                   "messages": [{"role": "user", "content": "I keep bees."}]}),
        )
        .await;
    let task = v["data"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(wait_task(&s, &task).await, "completed");
}

async fn wait_task(s: &TestServer, task: &str) -> String {
    for _ in 0..500 {
        let (_, v) = s.post("get/status", json!({"task_id": task})).await;
        let status = v["data"]["status"].as_str().unwrap_or_default().to_string();
        if status != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("task {task} never finished");
}

/// An edit racing a delete of the same memory: whichever lands first, a delete that
/// answered 200 leaves the memory gone, never `activated` again. Fixed rounds, both delete
/// kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_edit_racing_a_delete_never_resurrects_the_memory() {
    let s = TestServer::new().await;
    for round in 0..40 {
        let hard = round % 2 == 1;
        let ids = s
            .add(
                "u",
                "c",
                json!([{"role": "user", "content": format!("I own {round} red bicycles.")}]),
            )
            .await;
        let id = ids[0].clone();
        let update = s.post(
            "update/memory",
            json!({"memory_id": id, "memory_value": format!("I own {round} blue bicycles.")}),
        );
        let delete = s.post("delete/memory", json!({"memory_ids": [id], "hard": hard}));
        let ((_, _), (ds, dv)) = tokio::join!(update, delete);
        assert_eq!(ds, StatusCode::OK, "{dv}");
        let (_, got) = s.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
        assert_ne!(
            got["data"]["status"], "activated",
            "round {round} (hard: {hard}): the deleted memory came back: {got}"
        );
        let hits = s
            .search(json!({"user_id": "u", "query": format!("{round} bicycles")}))
            .await;
        assert!(
            hits.iter().all(|h| h["id"] != id.as_str()),
            "round {round}: a deleted memory is searchable"
        );
    }
}

/// An erase racing a sync add that restates a stored fact: the add's merge used to write
/// the erased fact back under its old id. Whichever lands first, the old fact stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_erase_racing_a_restating_add_stays_final() {
    let s = TestServer::new().await;
    for round in 0..30 {
        let user = format!("u{round}");
        let fact = "I have a peanut allergy.";
        let old = s
            .add(&user, "c", json!([{"role": "user", "content": fact}]))
            .await;
        let add = s.post(
            "add/message",
            json!({"user_id": user, "conversation_id": "c2", "async_mode": false,
                   "messages": [{"role": "user", "content": fact}]}),
        );
        let erase = s.post("delete/memory", json!({"user_id": user}));
        let ((ast, av), (est, ev)) = tokio::join!(add, erase);
        assert_eq!(est, StatusCode::OK, "{ev}");
        assert!(ast == StatusCode::OK || ast == StatusCode::CONFLICT, "{av}");
        for id in &old {
            let (_, got) = s.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
            assert_eq!(
                got["code"], 40001,
                "round {round}: memory {id} came back after the erase: {got}"
            );
        }
    }
}

/// An erase while an acknowledged async add is still being extracted: the task's
/// memories never appear once the erase has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_erase_racing_an_async_task_stays_final() {
    let s = TestServer::new().await;
    for round in 0..30 {
        let user = format!("u{round}");
        s.add(
            &user,
            "c",
            json!([{"role": "user", "content": "I live in Oslo."}]),
        )
        .await;
        let (_, v) = s
            .post(
                "add/message",
                json!({"user_id": user, "conversation_id": "c",
                       "messages": [{"role": "user", "content": "I work as a nurse."}]}),
            )
            .await;
        let task = v["data"]["task_id"].as_str().unwrap().to_string();
        let (est, ev) = s.post("delete/memory", json!({"user_id": user})).await;
        assert_eq!(est, StatusCode::OK, "{ev}");
        // Until the task has ended (or is gone with the user), then look.
        for _ in 0..500 {
            let (_, t) = s.post("get/status", json!({"task_id": task})).await;
            if t["data"]["status"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (_, got) = s
            .post("get/memory", json!({"user_id": user, "size": 50}))
            .await;
        assert_eq!(
            got["data"]["total"], 0,
            "round {round}: memories came back after the erase: {got}"
        );
    }
}
