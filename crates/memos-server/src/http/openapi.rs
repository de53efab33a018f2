//! The OpenAPI 3.1 contract, derived by utoipa from the wire types (their doc comments are
//! the field descriptions) and the handlers' `#[utoipa::path]` annotations. Served at
//! `GET /openapi.json`; the committed copy (`openapi.json` at the repository's root) is
//! compared with it by a test, so a change of the contract is always reviewed on purpose.
//! `GET /docs` lays it out for people.

use std::sync::LazyLock;

use axum::Json;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use super::{api, chat, export, knowledge, profiles};

/// Every success: MemOS's envelope around the endpoint's own `data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Answer<T> {
    /// 0 on success.
    pub code: i64,
    /// `ok` on success.
    pub message: &'static str,
    /// The endpoint's result.
    pub data: T,
}

impl<T> Answer<T> {
    /// A success carrying `data`.
    pub fn ok(data: T) -> axum::Json<Self> {
        axum::Json(Self {
            code: 0,
            message: "ok",
            data,
        })
    }
}

/// An error answer: the envelope with a MemOS error code, a message that names the field at
/// fault, and no data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorAnswer {
    /// The MemOS error code: 40000 invalid input, 40002 a required field missing, 40003 an
    /// empty field, 40010/40011 an id too long, 40001 not found, 40100/40132 no or a wrong
    /// key, 40300 too many requests, 40305 too large, 40307/40308 nothing to delete, 50000
    /// an internal error, 50001 no LLM configured, 50004 a backend unavailable, 50131 no such
    /// task.
    pub code: i64,
    /// What went wrong, naming the field.
    pub message: String,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// The answers every endpoint may give besides its success.
#[derive(IntoResponses)]
pub enum Errors {
    /// Invalid input: bad JSON, a wrong type, an unknown field, a value out of range.
    #[response(status = 400)]
    BadRequest(ErrorAnswer),
    /// No key, or a key that is unknown or revoked.
    #[response(status = 401)]
    Unauthorized(ErrorAnswer),
    /// Something named does not exist in the key's project.
    #[response(status = 404)]
    NotFound(ErrorAnswer),
    /// What the request was computed from changed meanwhile; nothing was written.
    #[response(status = 409)]
    Conflict(ErrorAnswer),
    /// The body is over the size limit.
    #[response(status = 413)]
    TooLarge(ErrorAnswer),
    /// More concurrent requests than the project's cap.
    #[response(status = 429)]
    TooMany(ErrorAnswer),
    /// An internal error, logged with its cause; nothing was stored.
    #[response(status = 500)]
    Internal(ErrorAnswer),
    /// A backend (store, index, worker) is unavailable for now.
    #[response(status = 503)]
    Unavailable(ErrorAnswer),
}

/// `Authorization: Token <key>` (or `Bearer <key>`), as MemOS's clients send it.
struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <key>` (MemOS's form) or `Bearer <key>`",
            ))),
        );
    }
}

/// The contract of `/api/openmem/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "memos",
        description = "A MemOS-compatible long-term memory service: the MemOS cloud API \
                       (`/api/openmem/v1`) as its clients use it. Every answer is MemOS's \
                       envelope `{code, message, data}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        api::add_message,
        api::search_memory,
        api::get_memory,
        api::get_memory_by_id,
        api::get_users,
        api::get_conversations,
        chat::chat,
        knowledge::create_knowledgebase,
        knowledge::delete_knowledgebase,
        knowledge::add_knowledgebase_file,
        knowledge::get_knowledgebase_file,
        knowledge::delete_knowledgebase_file,
        profiles::add_profile_template,
        profiles::update_profile_template,
        profiles::delete_profile_template,
        profiles::get_profile_template,
        profiles::bind_profile_template,
        profiles::edit_profile,
        profiles::delete_profile,
        api::get_message,
        api::delete_memory,
        api::get_status,
        api::get_profile,
        api::get_history,
        api::update_memory,
        api::add_feedback,
        export::export_user,
        api::rerank,
        api::extract_memory,
    ),
    components(schemas(ErrorAnswer)),
    modifiers(&TokenAuth),
    security(("token" = [])),
    tags(
        (name = "memories", description = "Add, search, read, edit and delete memories"),
        (name = "chat", description = "Answers that already know the user"),
        (name = "knowledge bases", description = "A project's documents, searchable beside memories"),
        (name = "profiles", description = "Profile templates and the profiles bound to them"),
    )
)]
pub struct ApiDoc;

/// The contract as JSON, built once.
pub static SPEC: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().expect("the contract serializes")
});

/// `GET /docs`: a page that lays the contract out, endpoint by endpoint; built into the
/// binary (no CDN: it must work on a machine without network) and reading `/openapi.json`.
pub async fn docs() -> impl IntoResponse {
    axum::response::Html(include_str!("docs.html"))
}

/// `GET /openapi.json`: the contract. Needs no key.
pub async fn openapi_json() -> impl IntoResponse {
    Json(serde_json::from_str::<Value>(&SPEC).expect("the contract is JSON"))
}
