//! The dashboard at `/dashboard`: a page to see and fix what memos remembers (issue 16).
//!
//! Three files built into the binary (no front-end build, no CDN, nothing fetched at run
//! time): the page, its script and its style. The page holds no data of its own: it calls
//! the same API as every client, with the key the person enters (kept in the tab's session
//! storage, sent in the `Authorization` header, never in a URL), so the API's keys, project
//! scoping, limits and access log apply to it unchanged. The files need no key; everything
//! they show does.
//!
//! Plain JavaScript rather than a framework: the pages are tables, forms and a timeline,
//! and the whole script is smaller than a framework's runtime. Text from the store is
//! only ever set as text (`textContent`), never parsed as HTML; the content security
//! policy below refuses inline and foreign scripts besides.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Only this server's own files and API; no framing, no inline code, no referrer.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The dashboard's routes, to merge beside the API.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/",
            get(|| async { Redirect::permanent("/dashboard") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary; a stale script against a newer API is worse
    // than one more small request.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
