//! The OpenAPI contract (issue 15): `GET /openapi.json` serves OpenAPI 3.1 without a key;
//! the committed `openapi.json` is exactly what the code generates (a change of the
//! contract fails here and is reviewed on purpose: rerun with `MEMOS_UPDATE_GOLDEN=1`); every
//! path in it is served, and answers in the envelope it promises.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::TestServer;

async fn spec(s: &TestServer) -> Value {
    let resp = s
        .app
        .clone()
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_committed_contract_is_the_generated_one() {
    let s = TestServer::new().await;
    let got = serde_json::to_string_pretty(&spec(&s).await).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    if std::env::var_os("MEMOS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).expect("openapi.json at the repository's root");
    assert!(
        got == want,
        "the contract changed; if on purpose, rerun with MEMOS_UPDATE_GOLDEN=1 and review the diff of openapi.json"
    );
}

#[tokio::test]
async fn every_path_in_the_contract_is_served() {
    let s = TestServer::new().await;
    let spec = spec(&s).await;
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 27, "{} paths", paths.len());
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["requestBody"].is_object() || method == "get",
                "{path}: no request body"
            );
            assert!(
                op["responses"]["200"].is_object(),
                "{path}: no success answer"
            );
            assert!(
                op["responses"]["400"].is_object(),
                "{path}: no error answers"
            );
            let route = path
                .strip_prefix("/api/openmem/v1/")
                .unwrap()
                .replace("{memory_id}", "no-such-memory");
            let (status, v) = if method == "get" {
                s.get(&format!("/api/openmem/v1/{route}")).await
            } else {
                s.post(&route, json!({})).await
            };
            assert_ne!(
                v["message"], "no such endpoint",
                "{method} {path} is not served"
            );
            assert!(
                v["code"].is_number() && v["message"].is_string(),
                "{method} {path} answered {status} outside the envelope: {v}"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_built_in_and_reads_the_contract() {
    let s = TestServer::new().await;
    let resp = s
        .app
        .clone()
        .oneshot(Request::get("/docs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(page.contains("fetch(\"/openapi.json\")"));
    // Nothing from another host: the page must work without network.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads something from elsewhere"
    );
}
