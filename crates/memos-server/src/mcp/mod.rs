//! The MCP server: memos as tools for agents, over streamable HTTP at `/mcp` on
//! `memos serve` and over stdio (`memos mcp`) for desktop clients.
//!
//! - [`tools`]: each tool's arguments and schema, and the API request it becomes.
//! - [`api`]: where those requests go: this process's router, or a running server.
//!
//! The server is stateless (no MCP sessions): every call carries the caller's key and is
//! served on its own, so any server behind a load balancer answers any call, and a restart
//! loses nothing a client holds.

pub mod api;
mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use api::Api;

use crate::http::AppState;
use crate::http::error::ApiError;

/// What an agent reads first: how the tools fit together.
const INSTRUCTIONS: &str = "memos is the user's long-term memory. Before answering anything \
that may depend on what the user said in earlier conversations, call search_memories with \
their message. When the user shares facts about themselves, their plans or preferences, call \
add_memory with the turns. When they correct something remembered, call add_feedback. Every \
tool takes the user's user_id; memories of different users never mix.";

/// The MCP handler: the tool list, and each call sent to the API with the caller's key.
#[derive(Clone, Debug)]
pub struct MemosMcp {
    api: Api,
    /// The `Authorization` value for stdio (`memos mcp`); over HTTP each request's own
    /// header is used instead.
    auth: Option<String>,
    tools: Arc<Vec<Tool>>,
}

impl MemosMcp {
    /// A handler sending its calls to `api`, with `key` (the secret alone) when the
    /// transport carries no headers of its own.
    pub fn new(api: Api, key: Option<&str>) -> Self {
        MemosMcp {
            api,
            auth: key.map(|k| format!("Token {k}")),
            tools: Arc::new(tools::all()),
        }
    }

    /// The caller's `Authorization`: the HTTP request's, else the one this handler was
    /// given.
    fn auth_for(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.auth.clone())
    }
}

impl rmcp::ServerHandler for MemosMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("memos", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        // A tool that does not exist is the protocol's error; everything after it (bad
        // arguments, the API's refusals) is a tool error the model reads and can act on.
        let Some(planned) = tools::plan(&request.name, args) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}", request.name),
                None,
            ));
        };
        let result = match planned {
            Err(failure) => error_result(failure),
            Ok(call) => {
                let auth = self.auth_for(&context);
                match self.api.call(auth.as_deref(), &call.path, &call.body).await {
                    Ok(data) => {
                        let data = call.keep.apply(data);
                        let text = serde_json::to_string_pretty(&data).unwrap_or_default();
                        CallToolResult::success(vec![ContentBlock::text(text)])
                    }
                    Err(failure) => error_result(failure),
                }
            }
        };
        Ok(result.into())
    }
}

fn error_result(failure: api::Failure) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(failure.0)])
}

/// `/mcp`: the MCP streamable HTTP transport over `api` (this server's own router), behind
/// the API's key check.
pub fn http_service(state: AppState, api: Api) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // The transport's Host allow-list guards servers that trust anyone who can reach
        // them (DNS rebinding from a browser); every call here needs an API key, which a
        // rebinding page does not have, and a deployment's host names are its own.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.service.config().server.body_limit_bytes);
    let handler = MemosMcp::new(api, None);
    let mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(state, require_key))
}

/// A wrong or missing key is refused at the door (401 in the API's envelope), before any
/// MCP exchange, as the API refuses it.
async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let secret = crate::http::extract::secret(req.headers());
    match state.service.authenticate(secret).await {
        Ok(_) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}
