//! The one place domain errors become HTTP responses: MemOS's envelope
//! `{code, message, data}` with MemOS's numeric codes and a matching status.
//!
//! The match over [`memos_core::Error`] is exhaustive on purpose: a new domain error does
//! not compile until it is mapped here. Server-side failures are logged with their cause
//! and reach the client as a generic message only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use memos_core::error::{InputErrorKind, NotFoundKind};
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    /// A 40000 error for a malformed request (bad JSON, wrong types).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: 40000,
            message: cut(message.into()),
        }
    }

    /// The request body is larger than the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: 40000,
            message: format!("request body exceeds the limit of {limit} bytes"),
        }
    }

    /// A handler panicked: logged with its message, answered as a generic 500.
    pub fn from_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        tracing::error!(panic = what, "a request handler panicked");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 50000,
            message: "internal server error".into(),
        }
        .into_response()
    }

    /// The project has as many requests running as it may (MemOS's rate-limit code).
    pub fn rate_limited(per_project: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: 40300,
            message: format!(
                "rate limit exceeded: at most {per_project} requests of a project run at once; retry shortly"
            ),
        }
    }

    /// The key made more requests per second than it may (MemOS's rate-limit code).
    pub fn over_rate(per_second: u32, wait: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: 40300,
            message: format!(
                "rate limit exceeded: at most {per_second} requests per second per key; retry in {} ms",
                wait.as_millis().max(1)
            ),
        }
    }

    /// No such route.
    pub fn no_route() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: 40001,
            message: "no such endpoint".into(),
        }
    }
}

impl From<memos_core::Error> for ApiError {
    fn from(err: memos_core::Error) -> Self {
        use memos_core::Error as E;
        let (status, code, message) = match &err {
            E::InvalidInput { message, kind, .. } => {
                let code = match kind {
                    InputErrorKind::Invalid => 40000,
                    InputErrorKind::Required => 40002,
                    InputErrorKind::Empty => 40003,
                    InputErrorKind::UserIdTooLong => 40010,
                    InputErrorKind::ConversationIdTooLong => 40011,
                    InputErrorKind::TooLarge => 40305,
                    InputErrorKind::TooManyFiles => 50103,
                    InputErrorKind::FileTooLarge => 50104,
                    InputErrorKind::FilesTooLarge => 50105,
                };
                (StatusCode::BAD_REQUEST, code, message.clone())
            }
            E::NotFound { kind, .. } => {
                let code = match kind {
                    NotFoundKind::Record => 40001,
                    NotFoundKind::MemoryToDelete => 40307,
                    NotFoundKind::UserToDelete => 40308,
                    NotFoundKind::Task => 50131,
                    NotFoundKind::KnowledgeBase => 50120,
                };
                (StatusCode::NOT_FOUND, code, err.to_string())
            }
            E::Conflict(message) => (StatusCode::CONFLICT, 40000, message.clone()),
            E::MissingCredentials => (StatusCode::UNAUTHORIZED, 40100, err.to_string()),
            E::InvalidCredentials => (StatusCode::UNAUTHORIZED, 40132, err.to_string()),
            E::Unavailable(_) => {
                tracing::error!(error = %err, "service unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    50004,
                    "memory service is temporarily unavailable".into(),
                )
            }
            E::NoLlm(message) => (StatusCode::NOT_IMPLEMENTED, 50001, message.clone()),
            E::Llm(_) => {
                tracing::error!(error = %err, "chat model failed");
                (
                    StatusCode::BAD_GATEWAY,
                    50004,
                    "the chat model failed; try again later".into(),
                )
            }
            E::Extraction(_) => {
                tracing::error!(error = %err, "LLM extraction failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    50004,
                    "the LLM extractor is unavailable; try again later".into(),
                )
            }
            E::Backend(_) | E::Index(_) | E::Config(_) | E::Embedding(_) | E::Corrupt(_) => {
                // With the causes: a database error's own Display is only "db error".
                tracing::error!(error = %causes(&err), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    50000,
                    "internal server error".into(),
                )
            }
        };
        Self {
            status,
            code,
            message: cut(message),
        }
    }
}

/// Wraps an error answer made outside the handlers (a 405, a path axum could not decode,
/// any plain-text rejection) in MemOS's envelope, keeping its status; JSON answers and
/// successes pass through.
pub async fn envelope(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "method not allowed: API calls are POST (GET for get/memory/{id} and /health)".into()
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let code = match status {
        StatusCode::NOT_FOUND => 40001,
        s if s.is_server_error() => 50000,
        _ => 40000,
    };
    ApiError {
        status,
        code,
        message: cut(message),
    }
    .into_response()
}

/// Longest message sent back: ids and values a client sent are echoed, and a 100 KB id
/// must not come back whole.
const MAX_MESSAGE_CHARS: usize = 300;

fn cut(mut message: String) -> String {
    if let Some((i, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(i);
        message.push('…');
    }
    message
}

/// An error and each of its sources, for the log.
fn causes(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl ApiError {
    /// The envelope's body, for an error that cannot change the status any more (one in
    /// the middle of a stream).
    pub fn body(&self) -> serde_json::Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(super::openapi::ErrorAnswer {
                code: i64::from(self.code),
                message: self.message,
                data: None,
            }),
        )
            .into_response()
    }
}

/// `Result` for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
