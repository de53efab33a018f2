//! Operations (issue 15): request ids, and Prometheus metrics by route template.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::common::TestServer;

async fn call(s: &TestServer, req: Request<Body>) -> (StatusCode, Option<String>, String) {
    let resp = s.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, id, String::from_utf8_lossy(&body).to_string())
}

fn search(s: &TestServer, id: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/api/openmem/v1/search/memory")
        .header("authorization", format!("Token {}", s.key))
        .header("content-type", "application/json");
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    req.body(Body::from(
        json!({"user_id": "u", "query": "jazz"}).to_string(),
    ))
    .unwrap()
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_is_counted_by_route() {
    let s = TestServer::new().await;
    let (st, id, _) = call(&s, search(&s, Some("client-trace-42"))).await;
    assert_eq!(
        (st, id.as_deref()),
        (StatusCode::OK, Some("client-trace-42"))
    );
    let (_, id, _) = call(&s, search(&s, None)).await;
    assert_eq!(
        uuid::Uuid::parse_str(&id.unwrap())
            .unwrap()
            .get_version_num(),
        4
    );
    // Not a plain token: replaced, never echoed into logs or headers.
    let (_, id, _) = call(&s, search(&s, Some("bad id with spaces"))).await;
    assert!(uuid::Uuid::parse_str(&id.unwrap()).is_ok());
    let (_, id, _) = call(
        &s,
        Request::get("/api/openmem/v1/get/memory/some-id")
            .header("authorization", format!("Token {}", s.key))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(id.is_some(), "errors carry one too");

    let (st, _, text) = call(&s, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        text.contains(
            "memos_http_requests_total{route=\"/api/openmem/v1/search/memory\",method=\"POST\",status=\"200\"} 3"
        ),
        "{text}"
    );
    // Route templates, not raw paths: an id never becomes a series of its own.
    assert!(
        text.contains(
            "route=\"/api/openmem/v1/get/memory/{memory_id}\",method=\"GET\",status=\"404\""
        ),
        "{text}"
    );
    assert!(!text.contains("some-id"), "{text}");
    assert!(
        text.contains("memos_http_request_duration_seconds_bucket{le="),
        "{text}"
    );
    assert!(text.contains("memos_embedding_backlog "), "{text}");
    // Tasks by state: the test made none yet, so zeros; then one async add.
    assert!(text.contains("memos_tasks{state=\"running\"} "), "{text}");
    let (st, v) = s
        .post(
            "add/message",
            serde_json::json!({"user_id": "u", "conversation_id": "c",
                   "messages": [{"role": "user", "content": "I run marathons."}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut counted = 0;
    for _ in 0..200 {
        let (_, _, text) = call(&s, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let n = |state: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("memos_tasks{{state=\"{state}\"}} ")))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        counted = n("running") + n("completed") + n("failed");
        if n("completed") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(counted, 1, "the async add's task is counted");
    // Sync adds wait for the index: nothing left uncommitted. PostgreSQL searches itself.
    assert_eq!(
        text.contains("memos_index_lag_revisions{index=\"lexical\"} 0"),
        crate::BACKEND != "postgres",
        "{text}"
    );
    // The pool's use on PostgreSQL; the embedded store has none.
    assert_eq!(
        text.contains("memos_store_pool_connections{state=\"max\"}"),
        crate::BACKEND == "postgres",
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

/// Per-key rate limits (issue 15): past its burst a key answers 429 with MemOS's 40300 and
/// when to retry, in the envelope; another key goes on; nothing is stored by a refused add.
#[tokio::test]
async fn a_key_past_its_rate_is_refused_and_others_go_on() {
    let s = TestServer::with_config(|c| {
        c.server.rate_limit_per_second = 1;
        c.server.rate_limit_burst = 2;
    })
    .await;
    let add = |text: &str| {
        serde_json::json!({"user_id": "u", "conversation_id": "c", "async_mode": false,
                           "messages": [{"role": "user", "content": text}]})
    };
    for i in 0..2 {
        let (st, v) = s
            .post("add/message", add(&format!("I own {i} kites.")))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = s.post("add/message", add("I own many kites.")).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["code"], 40300, "{v}");
    assert!(v["message"].as_str().unwrap().contains("retry in"), "{v}");
    let (st, v) = s
        .post_as(
            &s.other_key,
            "get/memory",
            serde_json::json!({"user_id": "u"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "another key has its own budget: {v}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (st, v) = s
        .post(
            "get/memory",
            serde_json::json!({"user_id": "u", "size": 50}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["total"].as_u64().map(|n| n >= 2),
        Some(true),
        "{v}"
    );
    let texts: Vec<&str> = v["data"]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["memory_value"].as_str())
        .collect();
    assert!(
        !texts.iter().any(|t| t.contains("many kites")),
        "a refused add stored: {texts:?}"
    );
}

/// Readiness apart from liveness (issue 15): `GET /ready` answers 200 while the store does.
#[tokio::test]
async fn ready_says_the_store_answers() {
    let s = TestServer::new().await;
    let (st, _, text) = call(&s, Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::OK, "{text}");
    assert!(text.contains("\"ready\""), "{text}");
}
