//! A user's data out through `export/user` and back in through `import_user` (issue 15):
//! JSON Lines that stream, refusals in the envelope, another project's key seeing nothing,
//! and a round trip that keeps ids and is searchable at once. Both stores.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use memos_core::service::ExportRecord;
use serde_json::json;
use tower::ServiceExt;

use crate::common::TestServer;

/// `export/user` as the client receives it: status, content type and the body's lines.
async fn export(
    s: &TestServer,
    key: &str,
    body: serde_json::Value,
) -> (StatusCode, String, String) {
    let req = Request::post("/api/openmem/v1/export/user")
        .header("content-type", "application/json")
        .header("authorization", format!("Token {key}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_users_export_streams_and_imports_back_with_its_ids() {
    let s = TestServer::new().await;
    let ids = s
        .add(
            "alice",
            "c1",
            json!([
                {"role": "user", "content": "I live in Lisbon with two cats."},
                {"role": "user", "content": "I work night shifts as a nurse."}
            ]),
        )
        .await;
    s.add(
        "bob",
        "c1",
        json!([{"role": "user", "content": "I live in Oslo."}]),
    )
    .await;
    let (status, ct, text) = export(&s, &s.key, json!({"user_id": "alice"})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(ct, "application/x-ndjson");
    let records: Vec<ExportRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(matches!(records.first(), Some(ExportRecord::Header(h)) if h.user_id == "alice"));
    let Some(ExportRecord::End(n)) = records.last() else {
        panic!("no end line: {text}")
    };
    assert_eq!(n.memories, ids.len());
    assert_eq!(n.messages, 2);
    assert!(!text.contains("Oslo"), "another user's data in the export");

    // Refusals answer in the envelope, before any line.
    let (status, _, text) = export(&s, &s.key, json!({"user_id": "nobody"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let (status, _, _) = export(&s, &s.other_key, json!({"user_id": "alice"})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another project's key sees alice"
    );
    let (status, _, text) = export(&s, &s.key, json!({"user": "alice"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");

    // Into a server of its own: the same ids, searchable at once.
    let t = TestServer::new().await;
    let project = t
        .service
        .authenticate(Some(&t.key))
        .await
        .unwrap()
        .project_id;
    t.service
        .import_user(&project, records, &|_| {})
        .await
        .unwrap();
    let (_, found) = t
        .post(
            "search/memory",
            json!({"user_id": "alice", "query": "Where does the user live?"}),
        )
        .await;
    let found: Vec<&str> = found["data"]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter().any(|id| found.contains(&id.as_str())),
        "{found:?} vs {ids:?}"
    );
}
