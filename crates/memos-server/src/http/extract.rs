//! Request extractors that answer in MemOS's envelope: the caller's project from the
//! `Authorization` header, and JSON bodies whose errors name the offending field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// The project the presented API key grants, and its turn: one of the project's
/// concurrent requests, held until the handler returns.
#[derive(Debug)]
pub struct Project(pub String, pub Turn);

/// A project's share of the server while one of its requests runs.
pub type Turn = tokio::sync::OwnedSemaphorePermit;

/// Caps how many requests of one project run at once, so that one client's burst (or a
/// few maximum-size adds) answers quickly with MemOS's rate-limit code instead of slowing
/// every project down; and, when configured, how many requests per second each API key
/// makes (governor's GCRA: a rate and a burst, no background thread).
#[derive(Debug)]
pub struct Limiter {
    per_project: usize,
    projects: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    per_key: Option<(u32, governor::DefaultKeyedRateLimiter<String>)>,
}

impl Limiter {
    /// At most `per_project` requests of a project at once, and `per_second` requests of a
    /// key per second with bursts of `burst` (`per_second` 0: no rate limit; `burst` 0: as
    /// many as `per_second`).
    pub fn new(per_project: usize, per_second: u32, burst: u32) -> Self {
        let per_key = std::num::NonZeroU32::new(per_second).map(|rate| {
            let burst = std::num::NonZeroU32::new(burst).unwrap_or(rate);
            let quota = governor::Quota::per_second(rate).allow_burst(burst);
            (per_second, governor::RateLimiter::keyed(quota))
        });
        Self {
            per_project,
            projects: Default::default(),
            per_key,
        }
    }

    /// Refuses a key past its rate, saying how long to wait.
    pub fn check_rate(&self, key_id: &str) -> Result<(), ApiError> {
        let Some((per_second, limiter)) = &self.per_key else {
            return Ok(());
        };
        limiter.check_key(&key_id.to_string()).map_err(|not_until| {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::over_rate(*per_second, wait)
        })
    }

    /// A turn for `project`, or `None` when it has as many requests running as it may.
    pub fn try_turn(&self, project: &str) -> Option<Turn> {
        let sem = self
            .projects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(project.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_project)))
            .clone();
        sem.try_acquire_owned().ok()
    }
}

/// The key a request carries in `Authorization`. MemOS clients send `Token <key>`;
/// `Bearer <key>` is accepted for OpenAI-style and MCP clients, a bare key as it is.
pub fn secret(headers: &axum::http::HeaderMap) -> Option<&str> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    Some(
        if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
            rest.trim()
        } else {
            h
        },
    )
}

impl FromRequestParts<AppState> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = state.service.authenticate(secret(&parts.headers)).await?;
        state.limiter.check_rate(&key.id)?;
        let project = key.project_id;
        let turn = state
            .limiter
            .try_turn(&project)
            .ok_or_else(|| ApiError::rate_limited(state.limiter.per_project))?;
        Ok(Project(project, turn))
    }
}

/// A JSON body. Malformed JSON and wrong types are 40000 errors that say where.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // JSON only; a client that says it sends something else gets told so. No header at
        // all is taken as JSON (curl scripts, the SDK's json.dumps bodies set it anyway).
        if let Some(ct) = req.headers().get(axum::http::header::CONTENT_TYPE) {
            let json = ct.to_str().ok().is_some_and(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || mime.to_ascii_lowercase().ends_with("+json")
            });
            if !json {
                return Err(ApiError::bad_request(
                    "Content-Type must be application/json",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.service.config().server.body_limit_bytes)
            } else {
                ApiError::bad_request(
                    "could not read the request body: it was cut short or sent too slowly",
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body is empty; send a JSON object",
            ));
        }
        // No string may hold a NUL: PostgreSQL cannot store one, and no client means one.
        // The escape is rare, so only bodies that mention it are walked.
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(path) = nul_at(&v, String::new())
        {
            return Err(ApiError::bad_request(format!(
                "{path}: a NUL character (\\u0000) is not allowed in a string"
            )));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let what = inner.to_string();
            // serde's message ends with "at line X column Y"; keep it, it helps with big bodies.
            if inner.is_syntax() || inner.is_eof() {
                ApiError::bad_request(format!("malformed JSON: {what}"))
            } else if path == "." {
                // The body's own shape: an unknown field (named by serde), or not an object.
                ApiError::bad_request(format!("invalid request: {what}"))
            } else {
                ApiError::bad_request(format!("{path}: {what}"))
            }
        })
    }
}

/// Where the first string (or object key) holding a NUL is, as `messages[0].content`.
fn nul_at(v: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::String(s) => s.contains('\0').then(|| {
            if path.is_empty() {
                ".".into()
            } else {
                path.clone()
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(join("(a key)"))
            } else {
                nul_at(x, join(k))
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_gets_at_most_its_share_and_others_are_not_held_up() {
        let l = Limiter::new(2, 0, 0);
        let a1 = l.try_turn("a").unwrap();
        let _a2 = l.try_turn("a").unwrap();
        assert!(
            l.try_turn("a").is_none(),
            "the third waits for no one: refused"
        );
        assert!(l.try_turn("b").is_some(), "another project is not held up");
        drop(a1);
        assert!(l.try_turn("a").is_some(), "a finished request frees a turn");
    }

    #[test]
    fn a_key_past_its_rate_is_refused_with_the_wait_and_others_go_on() {
        let l = Limiter::new(64, 2, 3);
        for _ in 0..3 {
            l.check_rate("k1").expect("the burst passes");
        }
        let refused = l.check_rate("k1").unwrap_err();
        let body = refused.body();
        assert_eq!(body["code"], 40300);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("retry in"), "{message}");
        let status = axum::response::IntoResponse::into_response(refused).status();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        l.check_rate("k2").expect("another key has its own budget");
        std::thread::sleep(std::time::Duration::from_millis(550));
        l.check_rate("k1")
            .expect("half a second refills one request");
        assert!(
            Limiter::new(64, 0, 0).check_rate("k1").is_ok(),
            "0: no limit"
        );
    }
}
