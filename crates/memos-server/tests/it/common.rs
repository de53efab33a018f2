//! A test server: the real router over the store the test binary names (`crate::BACKEND`:
//! the embedded store in a temp dir, or PostgreSQL in a fresh schema), with two keys in two
//! projects.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use memos_core::{Config, MemoryService, auth};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct TestServer {
    pub app: Router,
    pub service: Arc<MemoryService>,
    /// Key of project `alpha`.
    pub key: String,
    /// Key of project `beta`.
    pub other_key: String,
    /// What the service was opened with.
    pub config: Config,
    pub _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.store.data_dir = dir.path().to_path_buf();
        // Lexical only: these tests pin API behaviour; the model's own tests live in
        // memos-core and the end-to-end tests run with it.
        cfg.embed.model_dir = Default::default();
        if crate::BACKEND == "postgres" {
            cfg.store.backend = memos_core::config::StoreBackend::Postgres;
            cfg.store.max_connections = 4;
            cfg.store.url = memos_core::store::tests_support::postgres_schema_url()
                .await
                .expect("set MEMOS_PG_URL to a PostgreSQL server (scripts/test.sh starts one)");
        }
        tweak(&mut cfg);
        let service = MemoryService::open(cfg.clone()).await.unwrap();
        let (_, key) = auth::create_key(service.store(), "alpha", "test")
            .await
            .unwrap();
        let (_, other_key) = auth::create_key(service.store(), "beta", "test")
            .await
            .unwrap();
        Self {
            app: memos_server::app(service.clone()),
            service,
            key,
            other_key,
            config: cfg,
            _dir: dir,
        }
    }

    /// A second server on the same database (PostgreSQL only: the embedded store belongs
    /// to one process), with the same keys, as a deployment of several servers has.
    pub async fn twin(&self) -> Self {
        assert_eq!(
            crate::BACKEND,
            "postgres",
            "only a shared database has twins"
        );
        let service = MemoryService::open(self.config.clone()).await.unwrap();
        Self {
            app: memos_server::app(service.clone()),
            service,
            key: self.key.clone(),
            other_key: self.other_key.clone(),
            config: self.config.clone(),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// POSTs raw bytes with an optional `Authorization` header value.
    pub async fn raw(
        &self,
        path: &str,
        auth: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(format!("/api/openmem/v1/{path}"))
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        (status, v)
    }

    /// POSTs JSON with this server's key.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(&self.key, path, body).await
    }

    /// POSTs JSON with a given key.
    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(path, Some(&format!("Token {key}")), body.to_string())
            .await
    }

    /// GETs a path without a key: status, headers and the body as sent.
    pub async fn raw_get(
        &self,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (
            status,
            headers,
            resp.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// GETs a path with this server's key.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let req = Request::get(path)
            .header("authorization", format!("Token {}", self.key))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Adds messages synchronously and returns the memory ids; panics on failure.
    pub async fn add(&self, user: &str, conversation: &str, messages: Value) -> Vec<String> {
        let (s, v) = self
            .post("add/message", json!({"user_id": user, "conversation_id": conversation, "messages": messages, "async_mode": false}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["status"], "completed", "{v}");
        v["data"]["memory_ids"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// Waits until an async task is no longer running and returns its status (empty when
    /// the task is gone, as after an erase of its user); panics after 5 s.
    pub async fn wait_task(&self, task: &str) -> String {
        for _ in 0..500 {
            let (_, v) = self.post("get/status", json!({"task_id": task})).await;
            let status = v["data"]["status"].as_str().unwrap_or_default().to_string();
            if status != "running" {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("task {task} never finished");
    }

    /// Searches and returns `memory_detail_list`.
    pub async fn search(&self, body: Value) -> Vec<Value> {
        let (s, v) = self.post("search/memory", body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["code"], 0, "{v}");
        v["data"]["memory_detail_list"].as_array().unwrap().clone()
    }
}

/// Asserts an error envelope: status, MemOS code, and that the message mentions `needle`.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: u64, needle: &str) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["data"].is_null(), "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message `{msg}` should mention `{needle}`"
    );
}
