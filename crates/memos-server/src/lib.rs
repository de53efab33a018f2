//! memos-server: the HTTP face of memos, speaking the MemOS cloud API, its MCP server
//! ([`mcp`], at `/mcp` and for `memos mcp` on stdio) and its dashboard ([`dashboard`], at
//! `/dashboard`).
//!
//! [`app`] builds the router over a [`memos_core::MemoryService`]; [`run`] serves it on a
//! listener until a shutdown future resolves. Both take their dependencies as arguments so
//! tests run the real server in-process.

#![warn(missing_docs)]

pub mod dashboard;
pub mod http;
pub mod mcp;

use std::future::Future;
use std::sync::Arc;

pub use http::app;
use memos_core::MemoryService;
use tokio::net::TcpListener;

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests.
///
/// hyper serves each connection with a timer, so a client has `server.body_timeout_ms` to
/// send its request headers (a half-sent head no longer holds a connection forever), as
/// the body timeout in the router bounds the body.
pub async fn run(
    listener: TcpListener,
    service: Arc<MemoryService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let head_timeout = std::time::Duration::from_millis(service.config().server.body_timeout_ms);
    let app = app(service);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait a moment instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
