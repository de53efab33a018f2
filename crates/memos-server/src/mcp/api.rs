//! Where the MCP tools send their calls: the MemOS API itself, in this process or on a
//! running server.
//!
//! Every tool is a translation of its arguments into one API request. Sending that request
//! through the API (rather than calling the service directly) keeps one set of rules: the
//! same validation and error envelope, the same key check and project scoping, the same
//! rate limits, access log and metrics. An MCP client can do exactly what an HTTP client with
//! the same key can do, and nothing more.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tower::ServiceExt;

/// The API the tools call.
#[derive(Clone, Debug)]
pub enum Api {
    /// The router of this process (`memos serve`'s `/mcp`, or `memos mcp --data-dir`).
    InProcess(axum::Router),
    /// A running server, by its base URL (`memos mcp --url`).
    Remote {
        /// `http://host:port`, without the API prefix.
        base: String,
        /// Shared connection pool.
        http: reqwest::Client,
    },
}

/// Why a call gave no data: what the tool reports to the model as its error.
#[derive(Debug)]
pub struct Failure(pub String);

impl Api {
    /// POSTs `body` to `path` (under the API prefix; every call the tools make is a POST)
    /// with `auth` as the `Authorization` header and returns the envelope's `data`, or the
    /// API's code and message.
    pub async fn call(
        &self,
        auth: Option<&str>,
        path: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", crate::http::API_PREFIX);
        let (status, bytes) = match self {
            Api::InProcess(router) => {
                let mut req = Request::builder()
                    .method(Method::POST)
                    .uri(&url)
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(a) = auth {
                    req = req.header(header::AUTHORIZATION, a);
                }
                let req = req
                    .body(Body::from(body.to_string()))
                    .map_err(|e| Failure(format!("cannot build the request: {e}")))?;
                // The router answers every request (its error type is Infallible).
                let Ok(resp) = router.clone().oneshot(req).await;
                let status = resp.status().as_u16();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .map_err(|e| Failure(format!("cannot read the answer: {e}")))?;
                (status, bytes.to_vec())
            }
            Api::Remote { base, http } => {
                let mut req = http.post(format!("{base}{url}")).json(body);
                if let Some(a) = auth {
                    req = req.header(reqwest::header::AUTHORIZATION, a);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Failure(format!("memos at {base} did not answer: {e}")))?;
                let status = resp.status().as_u16();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| Failure(format!("cannot read the answer: {e}")))?;
                (status, bytes.to_vec())
            }
        };
        unwrap_envelope(status, &bytes)
    }
}

/// The envelope's `data` when `code` is 0, else the code and message as a [`Failure`].
fn unwrap_envelope(status: u16, bytes: &[u8]) -> Result<Value, Failure> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Err(Failure(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )));
    };
    match v.get("code").and_then(Value::as_i64) {
        Some(0) => Ok(v.get("data").cloned().unwrap_or(Value::Null)),
        code => {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            Err(Failure(match code {
                Some(c) => format!("{message} (code {c}, HTTP {status})"),
                None => format!("{message} (HTTP {status})"),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_gives_its_data_or_its_error() {
        let ok = unwrap_envelope(200, br#"{"code":0,"data":{"a":1},"message":"ok"}"#).unwrap();
        assert_eq!(ok["a"], 1);
        let err = unwrap_envelope(
            400,
            br#"{"code":40000,"data":null,"message":"query is required"}"#,
        )
        .unwrap_err();
        assert_eq!(err.0, "query is required (code 40000, HTTP 400)");
        let raw = unwrap_envelope(502, b"<html>bad gateway</html>").unwrap_err();
        assert!(raw.0.starts_with("HTTP 502: <html>"), "{}", raw.0);
    }
}
