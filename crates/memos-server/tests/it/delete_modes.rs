//! `delete/memory` deletes exactly what the request names. Erasing a whole user is the
//! privacy path, reached only by `{"user_id": U}` alone, never as the fallback of a request
//! that named something else (issue 12).

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

/// A user with two turns and the profile facts made from them; returns every memory id.
async fn seeded(s: &TestServer, user: &str) -> Vec<String> {
    s.add(
        user,
        "c",
        json!([
            {"role": "user", "content": "I have a peanut allergy."},
            {"role": "user", "content": "I own a red bicycle."}
        ]),
    )
    .await
}

async fn memories(s: &TestServer, user: &str) -> Vec<Value> {
    let (st, v) = s
        .post("get/memory", json!({"user_id": user, "size": 50}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]["memory_detail_list"].as_array().unwrap().clone()
}

async fn message_count(s: &TestServer, user: &str) -> usize {
    let (_, v) = s
        .post(
            "get/message",
            json!({"user_id": user, "conversation_id": "c"}),
        )
        .await;
    v["data"]["message_detail_list"].as_array().unwrap().len()
}

#[tokio::test]
async fn issue_12_delete_by_user_and_memory_type_never_erases_the_user() {
    let s = TestServer::new().await;
    let ids = seeded(&s, "u").await;
    let before = memories(&s, "u").await;
    assert_eq!(before.len(), ids.len());
    let count = |t: &str| before.iter().filter(|m| m["memory_type"] == t).count();
    let (facts, turns) = (count("UserMemory"), count("LongTermMemory"));
    assert!(facts > 0 && turns > 0, "{before:?}");

    // The SDK's `delete_memory(user_id=U, memory_type="WorkingMemory")`: none of that type,
    // so nothing goes, and above all not the user.
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "memory_type": "WorkingMemory"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 0, "{v}");
    assert_eq!(memories(&s, "u").await.len(), ids.len());
    assert_eq!(message_count(&s, "u").await, 2, "the chat log stays");

    // By type: exactly the memories of that type.
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "memory_type": "UserMemory"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], facts);
    let left = memories(&s, "u").await;
    assert_eq!(left.len(), turns);
    assert!(left.iter().all(|m| m["memory_type"] == "LongTermMemory"));
    assert_eq!(message_count(&s, "u").await, 2);
}

#[tokio::test]
async fn requests_that_name_something_else_never_erase_the_user() {
    let s = TestServer::new().await;
    let ids = seeded(&s, "u").await;
    let refused = [
        (json!({"user_id": "u", "filter": {}}), "filter"),
        (json!({"user_id": "u", "filter": {"and": []}}), "filter"),
        (json!({"user_id": "u", "filter": {"or": []}}), "filter"),
        (json!({"user_id": "u", "filter": null}), "filter"),
        (json!({"user_id": "u", "memory_ids": null}), "memory_ids"),
        (json!({"user_id": "u", "memory_id": ids[0]}), "memory_id"),
        (
            json!({"user_id": "u", "memory_type": "Everything"}),
            "memory_type",
        ),
        (
            json!({"user_id": "u", "memory_type": null, "hard": true}),
            "memory_type",
        ),
        (json!({"user_id": "u", "agent": "a"}), "agent"),
        (json!({"user_ids": ["u"]}), "user_ids"),
        (
            json!({"user_id": "u", "memory_ids": ids, "filter": {"tags": {"contains": "x"}}}),
            "filter",
        ),
    ];
    for (body, field) in refused {
        let got = s.post("delete/memory", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, 40000, field);
        assert_eq!(
            memories(&s, "u").await.len(),
            ids.len(),
            "{body} deleted something"
        );
        assert_eq!(
            message_count(&s, "u").await,
            2,
            "{body} touched the chat log"
        );
    }
    assert_error(
        &s.post("delete/memory", json!({"user_id": "u", "memory_ids": []}))
            .await,
        StatusCode::BAD_REQUEST,
        40003,
        "memory_ids",
    );
    assert_error(
        &s.post("delete/memory", json!({"memory_type": "UserMemory"}))
            .await,
        StatusCode::BAD_REQUEST,
        40002,
        "user_id",
    );
}

#[tokio::test]
async fn each_delete_mode_removes_exactly_what_it_names() {
    let s = TestServer::new().await;
    let ids = seeded(&s, "u").await;
    seeded(&s, "other").await;

    // By ids, scoped to a user the older SDK's way (`user_ids` beside `memory_ids`).
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_ids": ["u"], "memory_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 1);
    assert_eq!(memories(&s, "u").await.len(), ids.len() - 1);
    // Another user's id under this user: not found, nothing goes.
    let theirs = memories(&s, "other").await[0]["id"].clone();
    assert_error(
        &s.post(
            "delete/memory",
            json!({"user_id": "u", "memory_ids": [theirs]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        40307,
        "memory",
    );

    // By filter and type together: an `and` of both.
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "memory_type": "LongTermMemory",
                   "filter": {"create_time": {"gte": "2000-01-01"}}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        memories(&s, "u")
            .await
            .iter()
            .all(|m| m["memory_type"] == "UserMemory")
    );

    // The user alone: everything of the user, and nothing of anyone else.
    let (st, v) = s.post("delete/memory", json!({"user_id": "u"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(memories(&s, "u").await.is_empty());
    assert_eq!(message_count(&s, "u").await, 0);
    assert_eq!(memories(&s, "other").await.len(), ids.len());
    assert_eq!(message_count(&s, "other").await, 2);
}
