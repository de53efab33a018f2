//! What operators run memos with: a request id on every request (the client's
//! `x-request-id`, or a new one, returned in the answer), one access-log line per request at
//! `info`, and Prometheus metrics at `GET /metrics` (`prometheus-client`, the Prometheus
//! project's own Rust client).

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use memos_core::model::TaskStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;

/// The header that carries a request's id.
pub const REQUEST_ID: &str = "x-request-id";

/// Labels of a request: its route (the template, never the raw path, so ids do not make
/// new series), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

/// Labels of a latency: the route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    backlog: Gauge,
    full_pass: Gauge,
    llm_calls: Gauge,
    llm_retries: Gauge,
    llm_failures: Gauge,
    llm_tokens: Family<Vec<(String, String)>, Gauge>,
    project_calls: Family<Vec<(String, String)>, Gauge>,
    project_tokens: Family<Vec<(String, String)>, Gauge>,
    cache: Family<Vec<(String, String)>, Gauge>,
    tasks: Family<Vec<(String, String)>, Gauge>,
    pool: Family<Vec<(String, String)>, Gauge>,
    /// Searches served by a replica or by the primary in its stead.
    replica_searches: Family<Vec<(String, String)>, Gauge>,
    index_lag: Family<Vec<(String, String)>, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("memos");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        // 1 ms to ~33 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from request to answer (to the first byte of a streamed answer), by route",
            latency.clone(),
        );
        let backlog = Gauge::default();
        registry.register(
            "embedding_backlog",
            "Memories this server wrote that may still wait for a vector",
            backlog.clone(),
        );
        let full_pass = Gauge::default();
        registry.register(
            "embedding_full_pass_due",
            "1 when the embedder will scan the whole store for memories without a vector",
            full_pass.clone(),
        );
        let llm_calls = Gauge::default();
        registry.register(
            "llm_extraction_calls",
            "LLM extraction calls since start",
            llm_calls.clone(),
        );
        let llm_retries = Gauge::default();
        registry.register(
            "llm_extraction_retries",
            "LLM extraction retries since start",
            llm_retries.clone(),
        );
        let llm_failures = Gauge::default();
        registry.register(
            "llm_extraction_failures",
            "LLM extractions that failed for good since start",
            llm_failures.clone(),
        );
        let llm_tokens = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "llm_extraction_tokens",
            "LLM tokens since start, by kind (prompt, completion)",
            llm_tokens.clone(),
        );
        let project_calls = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "llm_project_calls",
            "LLM requests since start, by project and job (extraction, profile, chat)",
            project_calls.clone(),
        );
        let project_tokens = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "llm_project_tokens",
            "LLM tokens the model reported since start, by project, job and kind (prompt, completion)",
            project_tokens.clone(),
        );
        let cache = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "search_cache_bytes",
            "RAM the search caches hold, by cache (vectors: users searched lately; queries), within search.cache_mb",
            cache.clone(),
        );
        let tasks = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "tasks",
            "Async tasks in the store, by state (running, completed, failed), all projects",
            tasks.clone(),
        );
        let pool = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "store_pool_connections",
            "The PostgreSQL pool's connections: open, idle, max; and callers waiting for one",
            pool.clone(),
        );
        let replica_searches = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "store_replica_searches",
            "Searches since start when store.replica_urls is set: served by a replica, or by the primary because none had caught up in time",
            replica_searches.clone(),
        );
        // A family, so a server without a local index (PostgreSQL) shows no series at all.
        let index_lag = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "index_lag_revisions",
            "Store writes the embedded store's lexical index has not committed yet",
            index_lag.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            backlog,
            full_pass,
            llm_calls,
            llm_retries,
            llm_failures,
            project_calls,
            project_tokens,
            cache,
            llm_tokens,
            tasks,
            pool,
            replica_searches,
            index_lag,
        }
    }
}

/// Gives every request an id, logs it when answered and counts it.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    // A client's id is kept when it is a plain token; anything else gets a fresh one.
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("checked above");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(REQUEST_ID, value);
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status,
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    resp
}

/// `GET /metrics`: Prometheus's text format. Needs no key: it names routes and counts,
/// never a user or a memory; projects only in the LLM usage series (`llm_project_*`),
/// which is how an operator bills them. Keep `/metrics` on the operator's network.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    match state.service.embedding_backlog() {
        Some(n) => {
            m.backlog.set(n as i64);
            m.full_pass.set(0);
        }
        None => {
            m.full_pass.set(1);
        }
    }
    if let Some(llm) = state.service.llm() {
        let u = llm.usage();
        m.llm_calls.set(u.calls as i64);
        m.llm_retries.set(u.retries as i64);
        m.llm_failures.set(u.failures as i64);
        for (kind, n) in [
            ("prompt", u.prompt_tokens),
            ("completion", u.completion_tokens),
        ] {
            m.llm_tokens
                .get_or_create(&vec![("kind".to_string(), kind.to_string())])
                .set(n as i64);
        }
    }
    let (vectors, queries) = state.service.cache_bytes();
    for (cache, n) in [("vectors", vectors), ("queries", Some(queries))] {
        if let Some(n) = n {
            m.cache
                .get_or_create(&vec![("cache".to_string(), cache.to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    for (project, job, t) in state.service.llm_usage() {
        let labels = |extra: &[(&str, &str)]| {
            let mut l = vec![
                ("project".to_string(), project.clone()),
                ("job".to_string(), job.as_str().to_string()),
            ];
            l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            l
        };
        m.project_calls
            .get_or_create(&labels(&[]))
            .set(t.calls as i64);
        for (kind, n) in [("prompt", t.prompt), ("completion", t.completion)] {
            m.project_tokens
                .get_or_create(&labels(&[("kind", kind)]))
                .set(n as i64);
        }
    }
    match state.service.task_counts().await {
        Ok(counts) => {
            for s in [
                TaskStatus::Running,
                TaskStatus::Completed,
                TaskStatus::Failed,
            ] {
                let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                m.tasks
                    .get_or_create(&vec![("state".to_string(), s.as_str().to_string())])
                    .set(n as i64);
            }
        }
        // The rest of the metrics still answer; the store's trouble is in the log.
        Err(e) => tracing::warn!(error = %e, "counting tasks for /metrics failed"),
    }
    match state.service.index_lag().await {
        Ok(Some(lag)) => {
            m.index_lag
                .get_or_create(&vec![("index".to_string(), "lexical".to_string())])
                .set(lag as i64);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the index lag for /metrics failed"),
    }
    if let Some(p) = state.service.store_pool() {
        for (kind, n) in [
            ("open", p.open),
            ("idle", p.idle),
            ("max", p.max),
            ("waiting", p.waiting),
        ] {
            m.pool
                .get_or_create(&vec![("state".to_string(), kind.to_string())])
                .set(n as i64);
        }
        for (by, n) in [
            ("replica", p.replica_searches),
            ("primary_fallback", p.replica_fallbacks),
        ] {
            m.replica_searches
                .get_or_create(&vec![("served_by".to_string(), by.to_string())])
                .set(n as i64);
        }
    }
    let mut out = String::new();
    let registry = m.registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
