//! The HTTP API: routes, shared state, and the health check.
//!
//! - [`api`]: handlers of the MemOS cloud API under `/api/openmem/v1`.
//! - [`profiles`]: its profile templates and profile instances.
//! - [`chat`]: `chat`, whole or streamed.
//! - [`knowledge`]: knowledge bases and their files.
//! - [`export`]: a user's data as JSON Lines.
//! - [`ops`]: request ids, the access log, Prometheus metrics.
//! - [`wire`]: request and response shapes.
//! - [`extract`]: authentication and JSON extractors that answer in the envelope.
//! - [`error`]: the single mapping from domain errors to codes and statuses.
//!
//! `/mcp` (the MCP server, [`crate::mcp`]) and `/dashboard` ([`crate::dashboard`]) are
//! merged in beside the API.

pub mod api;
pub mod chat;
pub mod error;
pub mod export;
pub mod extract;
pub mod knowledge;
pub mod openapi;
pub mod ops;
pub mod profiles;
pub mod wire;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use memos_core::MemoryService;
use serde_json::{Value, json};

/// The prefix of the MemOS cloud API.
pub const API_PREFIX: &str = "/api/openmem/v1";

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The memory service.
    pub service: Arc<MemoryService>,
    /// The per-project cap on concurrent requests.
    pub limiter: Arc<extract::Limiter>,
    /// What `/metrics` reports.
    pub metrics: Arc<ops::Metrics>,
}

/// The whole router. Tests call it directly with `oneshot`; `run` serves it.
pub fn app(service: Arc<MemoryService>) -> Router {
    let limit = service.config().server.body_limit_bytes;
    let body_timeout = service.config().server.body_timeout_ms;
    let server = &service.config().server;
    let limiter = Arc::new(extract::Limiter::new(
        server.max_concurrent_per_project,
        server.rate_limit_per_second,
        server.rate_limit_burst,
    ));
    let state = AppState {
        service,
        limiter,
        metrics: Arc::new(ops::Metrics::default()),
    };
    let api = Router::new()
        .route("/add/message", post(api::add_message))
        .route("/search/memory", post(api::search_memory))
        .route("/get/memory", post(api::get_memory))
        .route("/get/memory/{memory_id}", get(api::get_memory_by_id))
        .route("/get/users", post(api::get_users))
        .route("/get/conversations", post(api::get_conversations))
        .route("/chat", post(chat::chat))
        .route(
            "/create/knowledgebase",
            post(knowledge::create_knowledgebase),
        )
        .route(
            "/delete/knowledgebase",
            post(knowledge::delete_knowledgebase),
        )
        // Files are large: this route alone takes MemOS's 300 MB per call, base64 included.
        .route(
            "/add/knowledgebase-file",
            post(knowledge::add_knowledgebase_file).layer(DefaultBodyLimit::max(
                memos_core::service::MAX_CALL_BYTES / 3 * 4 + (1 << 20),
            )),
        )
        .route(
            "/get/knowledgebase-file",
            post(knowledge::get_knowledgebase_file),
        )
        .route(
            "/delete/knowledgebase-file",
            post(knowledge::delete_knowledgebase_file),
        )
        .route(
            "/add/profile_template",
            post(profiles::add_profile_template),
        )
        .route(
            "/update/profile_template",
            post(profiles::update_profile_template),
        )
        .route(
            "/delete/profile_template",
            post(profiles::delete_profile_template),
        )
        .route(
            "/get/profile_template",
            post(profiles::get_profile_template),
        )
        .route(
            "/bind/profile_template",
            post(profiles::bind_profile_template),
        )
        .route("/edit/profile", post(profiles::edit_profile))
        .route("/delete/profile", post(profiles::delete_profile))
        .route("/get/message", post(api::get_message))
        .route("/delete/memory", post(api::delete_memory))
        .route("/get/status", post(api::get_status))
        .route("/get/profile", post(api::get_profile))
        .route("/get/history", post(api::get_history))
        .route("/update/memory", post(api::update_memory))
        .route("/add/feedback", post(api::add_feedback))
        .route("/export/user", post(export::export_user))
        .route("/rerank", post(api::rerank))
        .route("/extract/memory", post(api::extract_memory));
    let base = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .merge(crate::dashboard::routes())
        .nest(API_PREFIX, api)
        .fallback(|| async { error::ApiError::no_route() })
        // Answers made outside the handlers (axum's rejections, 405) get the envelope too.
        .layer(axum::middleware::map_response(error::envelope))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_millis(body_timeout),
        ))
        // A bug some input finds answers a logged 500 in the envelope; the connection and
        // the server live on (issue 13).
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::ApiError::from_panic,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Outermost: the id, the log line and the counts see every answer as sent.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .with_state(state.clone());
    // MCP tools are API calls sent through `base` itself, so they keep its rules, limits
    // and logs; the `/mcp` route is counted and logged as any other.
    let mcp = crate::mcp::http_service(state.clone(), crate::mcp::Api::InProcess(base.clone()))
        .layer(axum::middleware::from_fn_with_state(state, ops::observe));
    mcp.merge(base)
}

/// `GET /ready`: readiness, apart from liveness: 200 while the store answers, else the
/// store's error (503, 50004) so a load balancer stops sending requests. Needs no key.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, error::ApiError> {
    state.service.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}

/// `GET /health`: liveness plus what this server runs on. Needs no key.
async fn health(State(state): State<AppState>) -> Json<Value> {
    let cfg = state.service.config();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": cfg.store.backend.as_str(),
        // How many memories still wait for a vector: when 0, semantic search covers all.
        "embedding_backlog": state.service.embedding_backlog(),
                "search": {
            "lexical": "bm25",
            "dense": state.service.embedder().map_or("off: no embedding model loaded".to_string(), |e| e.model_id().to_string()),
        },
        "extraction": {
            "fast": true,
            "llm": match state.service.llm() {
                Some(l) => json!({"model": l.model(), "base_url": cfg.llm.base_url, "usage": l.usage()}),
                None => json!("not configured: fast extraction only (set llm.base_url)"),
            },
        },
    }))
}
