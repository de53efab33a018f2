//! Bad input gets a clear error naming the field, the right code, and stores nothing.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

async fn nothing_stored(s: &TestServer) {
    let (_, v) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(
        v["data"]["message_detail_list"],
        json!([]),
        "a rejected add stored messages"
    );
    let (_, v) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(v["data"]["total"], 0, "a rejected add stored memories");
}

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let s = TestServer::new().await;
    let key = format!("Token {}", s.key);
    assert_error(
        &s.raw("add/message", Some(&key), "{\"user_id\": ").await,
        StatusCode::BAD_REQUEST,
        40000,
        "malformed JSON",
    );
    assert_error(
        &s.raw("add/message", Some(&key), "").await,
        StatusCode::BAD_REQUEST,
        40000,
        "empty",
    );
    assert_error(
        &s.raw("add/message", Some(&key), "[1, 2]").await,
        StatusCode::BAD_REQUEST,
        40000,
        "",
    );
    assert_error(
        &s.post(
            "add/message",
            json!({"user_id": 5, "conversation_id": "c", "messages": []}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "user_id",
    );
    assert_error(
        &s.post("add/message", json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": 7}]})).await,
        StatusCode::BAD_REQUEST,
        40000,
        "messages[0].content",
    );
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "u", "query": "x", "memory_limit_number": "six"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "memory_limit_number",
    );
    nothing_stored(&s).await;
}

#[tokio::test]
async fn missing_and_empty_fields() {
    let s = TestServer::new().await;
    let cases = [
        (
            json!({"conversation_id": "c", "messages": [{"role": "user", "content": "hi"}]}),
            40002,
            "user_id",
        ),
        (
            json!({"user_id": "u", "messages": [{"role": "user", "content": "hi"}]}),
            40002,
            "conversation_id",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c"}),
            40002,
            "messages",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": []}),
            40003,
            "messages",
        ),
        (
            json!({"user_id": "  ", "conversation_id": "c", "messages": [{"role": "user", "content": "hi"}]}),
            40002,
            "user_id",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "  "}]}),
            40002,
            "messages[1].content",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"content": "hi"}]}),
            40002,
            "messages[0].role",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "robot", "content": "hi"}]}),
            40000,
            "messages[0].role",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": "hi", "chat_time": "next tuesday"}]}),
            40000,
            "messages[0].chat_time",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": "hi"}], "tags": [""]}),
            40002,
            "tags[0]",
        ),
    ];
    for (body, code, field) in cases {
        assert_error(
            &s.post("add/message", body).await,
            StatusCode::BAD_REQUEST,
            code,
            field,
        );
    }
    nothing_stored(&s).await;
    assert_error(
        &s.post("search/memory", json!({"user_id": "u", "query": "   "}))
            .await,
        StatusCode::BAD_REQUEST,
        40002,
        "query",
    );
    assert_error(
        &s.post("search/memory", json!({"query": "x"})).await,
        StatusCode::BAD_REQUEST,
        40002,
        "user_id",
    );
    assert_error(
        &s.post("delete/memory", json!({})).await,
        StatusCode::BAD_REQUEST,
        40002,
        "memory_ids or user_id",
    );
    assert_error(
        &s.post("get/status", json!({})).await,
        StatusCode::BAD_REQUEST,
        40002,
        "task_id",
    );
}

#[tokio::test]
async fn over_long_ids_and_out_of_range_numbers() {
    let s = TestServer::new().await;
    let long = "x".repeat(101);
    let msg = json!([{"role": "user", "content": "hi"}]);
    assert_error(
        &s.post(
            "add/message",
            json!({"user_id": long, "conversation_id": "c", "messages": msg}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40010,
        "user_id",
    );
    assert_error(
        &s.post(
            "add/message",
            json!({"user_id": "u", "conversation_id": long, "messages": msg}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40011,
        "conversation_id",
    );
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "u", "query": "x", "conversation_id": long}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40011,
        "conversation_id",
    );
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "u", "query": "x", "memory_limit_number": 26}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "memory_limit_number",
    );
    assert_error(
        &s.post("get/memory", json!({"user_id": "u", "size": 51}))
            .await,
        StatusCode::BAD_REQUEST,
        40000,
        "size",
    );
    assert_error(
        &s.post("get/memory", json!({"user_id": "u", "page": 0}))
            .await,
        StatusCode::BAD_REQUEST,
        40000,
        "page",
    );
    assert_error(
        &s.post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c", "message_limit_number": 500}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "message_limit_number",
    );
    nothing_stored(&s).await;
}

#[tokio::test]
async fn oversized_bodies_and_contents() {
    let s = TestServer::with_config(|c| {
        c.server.body_limit_bytes = 64 * 1024;
        c.limits.max_add_chars = 10_000;
    })
    .await;
    let huge = "a".repeat(100 * 1024);
    let body = json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": huge}]});
    assert_error(
        &s.post("add/message", body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        40000,
        "limit",
    );
    let big = "word ".repeat(2_500);
    let body = json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": big}]});
    assert_error(
        &s.post("add/message", body).await,
        StatusCode::BAD_REQUEST,
        40305,
        "at most",
    );
    nothing_stored(&s).await;
}

#[tokio::test]
async fn bad_filters_name_the_field() {
    let s = TestServer::new().await;
    let cases = [
        (json!({"and": [{"colour": "red"}]}), "filter.colour"),
        (
            json!({"and": [{"create_time": {"after": "2025-01-01"}}]}),
            "filter.create_time.after",
        ),
        (json!({"and": [{"tags": {"has": "x"}}]}), "filter.tags"),
        (json!({"and": [{"user_id": "someone-else"}]}), "user_id"),
        (json!("tags=food"), "filter"),
    ];
    for (filter, needle) in cases {
        let body = json!({"user_id": "u", "query": "x", "filter": filter});
        assert_error(
            &s.post("search/memory", body.clone()).await,
            StatusCode::BAD_REQUEST,
            40000,
            needle,
        );
        let body = json!({"user_id": "u", "filter": filter});
        assert_error(
            &s.post("get/memory", body).await,
            StatusCode::BAD_REQUEST,
            40000,
            needle,
        );
    }
}
