//! The calls the dashboard needs beyond MemOS's (issue 16): `get/memory` by status,
//! `search/memory` with `explain`, `get/conversations`; and the dashboard's files.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn memories_are_listed_by_status_when_asked() {
    let s = TestServer::new().await;
    let ids = s
        .add(
            "u",
            "c",
            json!([{"role": "user", "content": "I own a red bicycle."}]),
        )
        .await;
    let (_, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "memory_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let listed = |v: &Value| -> Vec<String> {
        v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, plain) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert!(!listed(&plain).contains(&ids[0]), "{plain}");
    let (_, deleted) = s
        .post("get/memory", json!({"user_id": "u", "status": ["deleted"]}))
        .await;
    assert_eq!(listed(&deleted), [ids[0].clone()], "{deleted}");
    assert_eq!(
        deleted["data"]["memory_detail_list"][0]["status"],
        "deleted"
    );
    assert_eq!(deleted["data"]["total"], 1);
    assert_error(
        &s.post("get/memory", json!({"user_id": "u", "status": ["gone"]}))
            .await,
        StatusCode::BAD_REQUEST,
        40000,
        "status",
    );
}

#[tokio::test]
async fn a_search_explains_its_ranking_only_when_asked() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "c",
        json!([{"role": "user", "content": "I went hiking in the Alps last summer.",
                "chat_time": "2025-07-01T10:00:00Z"}]),
    )
    .await;
    let plain = s.search(json!({"user_id": "u", "query": "hiking"})).await;
    assert!(plain[0].get("explain").is_none(), "{plain:?}");
    let hits = s
        .search(json!({"user_id": "u", "query": "hiking in July 2025",
                       "explain": true, "conversation_id": "c"}))
        .await;
    let why = &hits[0]["explain"];
    assert_eq!(why["lexical"]["rank"], 1, "{why}");
    assert!(why["lexical"]["score"].as_f64().unwrap() > 0.0, "{why}");
    assert_eq!(
        why["date_window"],
        json!(["2025-07-01T00:00:00.000Z", "2025-08-01T00:00:00.000Z"]),
        "{why}"
    );
    assert_eq!(why["in_window"], true, "{why}");
    assert!(why["conversation_boost"].as_f64().unwrap() > 1.0, "{why}");
    assert!(why["fused_score"].as_f64().unwrap() > 0.0, "{why}");
}

#[tokio::test]
async fn conversations_are_listed_latest_first_per_project() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "older",
        json!([{"role": "user", "content": "I like tea.", "chat_time": "2025-01-01T00:00:00Z"},
               {"role": "user", "content": "Green tea.", "chat_time": "2025-01-02T00:00:00Z"}]),
    )
    .await;
    s.add(
        "u",
        "newer",
        json!([{"role": "user", "content": "I like coffee.", "chat_time": "2025-03-01T00:00:00Z"}]),
    )
    .await;
    let (st, v) = s
        .post("get/conversations", json!({"user_id": "u", "size": 1}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(
        (d["total"].as_u64(), d["pages"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        d["conversation_detail_list"][0],
        json!({"conversation_id": "newer", "message_count": 1,
               "first_chat_time": "2025-03-01T00:00:00.000Z",
               "last_chat_time": "2025-03-01T00:00:00.000Z"})
    );
    let (_, v) = s
        .post(
            "get/conversations",
            json!({"user_id": "u", "size": 1, "page": 2}),
        )
        .await;
    assert_eq!(v["data"]["conversation_detail_list"][0]["message_count"], 2);
    let (_, other) = s
        .post_as(
            &s.other_key.clone(),
            "get/conversations",
            json!({"user_id": "u"}),
        )
        .await;
    assert_eq!(other["data"]["total"], 0, "{other}");
    assert_error(
        &s.post("get/conversations", json!({})).await,
        StatusCode::BAD_REQUEST,
        40002,
        "user_id",
    );
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let s = TestServer::new().await;
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let (status, headers, body) = s.raw_get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert!(!body.is_empty());
    }
}
