//! `memos mcp`: the MCP server over stdio, for desktop clients that start their tools as
//! child processes (Claude Desktop, Cursor, ...).
//!
//! With `--url` the tools call a running memos server; without it the data directory is
//! opened in this process (which then must be the only one holding it). Either way each
//! call is an API request with the given key, as `/mcp` on `memos serve` makes them.
//! Stdout carries the protocol alone: logs go to stderr, as everywhere in memos.

use anyhow::{Context, Result};
use clap::Args;
use memos_core::{Config, auth};
use memos_server::mcp::{Api, MemosMcp};
use rmcp::ServiceExt;

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// A running memos server to send the calls to (`http://host:port`). Without it, the
    /// data directory is opened here; no server may hold it.
    #[arg(long, env = "MEMOS_URL", value_name = "URL")]
    url: Option<String>,
    /// The API key the calls carry (the secret `memos keys create` printed).
    #[arg(long, env = "MEMOS_API_KEY", hide_env_values = true)]
    key: Option<String>,
}

pub(crate) async fn mcp(cfg: Config, args: McpArgs) -> Result<()> {
    let key = args
        .key
        .filter(|k| !k.trim().is_empty())
        .context("an API key is needed: --key or MEMOS_API_KEY")?;
    let key = key.trim();
    // Held until the client goes, so the store closes cleanly after the last call.
    let mut local = None;
    let api = match args.url {
        Some(url) => Api::Remote {
            base: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        },
        None => {
            let service = crate::open(cfg).await?;
            // As `memos serve` does: MEMOS_API_KEY is a key of the default project.
            if let Ok(k) = std::env::var("MEMOS_API_KEY")
                && !k.trim().is_empty()
            {
                service.seed_key(k.trim(), auth::DEFAULT_PROJECT).await?;
            }
            let router = memos_server::app(service.clone());
            local = Some(service);
            Api::InProcess(router)
        }
    };
    // A wrong key fails here, before the client's handshake, as `/mcp` refuses it at the
    // door: not later, as an error on every tool call.
    api.call(
        Some(&format!("Token {key}")),
        "/get/users",
        &serde_json::json!({"page": 1, "size": 1}),
    )
    .await
    .map_err(|e| anyhow::anyhow!("the API key was refused: {}", e.0))?;
    tracing::info!("serving MCP on stdio");
    let running = MemosMcp::new(api, Some(key))
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not complete the handshake")?;
    running.waiting().await?;
    drop(local);
    Ok(())
}
