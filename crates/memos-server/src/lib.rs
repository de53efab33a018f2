//! memos-server: the HTTP face of memos, speaking the MemOS cloud API.
//!
//! [`app`] builds the router over a [`memos_core::MemoryService`]; [`run`] serves it on a
//! listener until a shutdown future resolves. Both take their dependencies as arguments so
//! tests run the real server in-process.

#![warn(missing_docs)]

pub mod http;

use std::future::Future;
use std::sync::Arc;

pub use http::app;
use memos_core::MemoryService;
use tokio::net::TcpListener;

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    service: Arc<MemoryService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(service))
        .with_graceful_shutdown(shutdown)
        .await
}
