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

/// The SDK's `delete_memory(filter=...)`: a filter alone deletes what matches, of every
/// user of the project and of no other project; the users and their chat logs stay.
#[tokio::test]
async fn a_filter_alone_deletes_its_matches_across_the_project_only() {
    let s = TestServer::new().await;
    for user in ["u", "v"] {
        s.post(
            "add/message",
            json!({"user_id": user, "conversation_id": "c", "async_mode": false,
                   "tags": ["trip"], "messages": [{"role": "user", "content": "Booked a train to Rome."}]}),
        )
        .await;
        seeded(&s, user).await;
    }
    let (st, _) = s
        .post_as(
            &s.other_key.clone(),
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "async_mode": false,
                   "tags": ["trip"], "messages": [{"role": "user", "content": "Booked a flight to Oslo."}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let tagged = |ms: &[Value]| {
        ms.iter()
            .filter(|m| m["tags"].to_string().contains("\"trip\""))
            .count()
    };
    let before_u = memories(&s, "u").await;
    assert!(tagged(&before_u) > 0, "{before_u:?}");

    let (st, v) = s
        .post(
            "delete/memory",
            json!({"filter": {"tags": {"contains": "trip"}}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 2 * tagged(&before_u), "{v}");
    for user in ["u", "v"] {
        let left = memories(&s, user).await;
        assert_eq!(tagged(&left), 0, "{left:?}");
        assert_eq!(left.len(), before_u.len() - tagged(&before_u));
        assert_eq!(message_count(&s, user).await, 3, "the chat log stays");
    }
    // The other project's matching memory is untouched.
    let (_, v) = s
        .post_as(
            &s.other_key.clone(),
            "get/memory",
            json!({"user_id": "u", "size": 50}),
        )
        .await;
    assert!(
        !v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{v}"
    );

    // A filter without conditions, or a type alone, still selects nothing project-wide.
    for body in [json!({"filter": {}}), json!({"filter": {"and": []}})] {
        let got = s.post("delete/memory", body).await;
        assert_error(&got, StatusCode::BAD_REQUEST, 40000, "filter");
    }
}

/// `get/users` lists the project's subjects with counts, most recently changed first.
#[tokio::test]
async fn users_are_listed_per_project_with_counts() {
    let s = TestServer::new().await;
    let u = seeded(&s, "u").await;
    let v = seeded(&s, "v").await;
    s.post(
        "add/message",
        json!({"agent_id": "planner", "conversation_id": "c", "async_mode": false,
               "messages": [{"role": "user", "content": "Plan the week."}]}),
    )
    .await;
    let (st, got) = s.post("get/users", json!({"size": 2})).await;
    assert_eq!(st, StatusCode::OK, "{got}");
    let data = &got["data"];
    assert_eq!(
        (data["total"].as_u64(), data["pages"].as_u64()),
        (Some(3), Some(2))
    );
    let list = data["user_detail_list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["agent_id"], "planner", "{got}");
    assert_eq!(list[0]["user_id"], Value::Null);
    assert_eq!(list[1]["user_id"], "v");
    assert_eq!(list[1]["memory_count"], v.len());
    let (_, got) = s.post("get/users", json!({"size": 2, "page": 2})).await;
    assert_eq!(got["data"]["user_detail_list"][0]["memory_count"], u.len());
    let (_, other) = s
        .post_as(&s.other_key.clone(), "get/users", json!({}))
        .await;
    assert_eq!(other["data"]["total"], 0, "{other}");
    assert_error(
        &s.post("get/users", json!({"size": 0})).await,
        StatusCode::BAD_REQUEST,
        40000,
        "size",
    );
    assert_error(
        &s.post("get/users", json!({"project": "beta"})).await,
        StatusCode::BAD_REQUEST,
        40000,
        "project",
    );
}
