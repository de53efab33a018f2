//! `POST chat`: an answer that knows the user, whole or streamed as MemOS streams it:
//! server-sent events `data: {"type": "reasoning" | "text" | "end", "data": ...}`, one per
//! piece as the model writes it. A client that goes away drops the stream, which closes
//! the connection to the model and remembers nothing.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use memos_core::service::{ChatAnswer, ChatEvent};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Project};
use super::openapi::Answer;
use super::wire::{ChatData, ChatRequest};

/// The answer's data: MemOS's `response`, and what memos adds beside it.
fn answer(a: ChatAnswer) -> ChatData {
    let (task_id, status) = match a.remembered {
        Some(r) => (Some(r.task_id), Some(r.status.as_str())),
        None => (None, None),
    };
    ChatData {
        response: a.response,
        model: a.model,
        memories_used: a.memories_used,
        task_id,
        status,
    }
}

fn event(kind: &str, data: Value) -> Result<Event, std::convert::Infallible> {
    Ok(Event::default().data(json!({"type": kind, "data": data}).to_string()))
}

/// `POST chat`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/chat",
    tag = "chat",
    request_body = ChatRequest,
    responses((status = 200, description = "The answer in the envelope, or with `stream: true` server-sent events `{type: reasoning|text|end|error, data}`", content((Answer<ChatData> = "application/json"), ("text/event-stream"))), (status = 501, description = "No LLM is configured (50001); nothing was stored", body = super::openapi::ErrorAnswer), super::openapi::Errors)
)]
pub async fn chat(
    State(state): State<AppState>,
    Project(project, turn): Project,
    Body(req): Body<ChatRequest>,
) -> ApiResult<Response> {
    let (input, stream) = req.into_input(state.service.config().search.default_limit)?;
    if !stream {
        let a = state.service.chat(&project, input).await?;
        return Ok(Answer::ok(answer(a)).into_response());
    }
    // Errors before the first token still get their status; later ones come as an
    // `error` event, the status being sent already.
    let chat = state.service.clone().chat_stream(&project, input).await?;
    // The project's turn is held for as long as the stream runs.
    let events = futures_util::stream::unfold(Some((chat, turn)), |s| async move {
        let (mut chat, turn) = s?;
        match chat.next().await? {
            Ok(ChatEvent::Reasoning(r)) => Some((event("reasoning", json!(r)), Some((chat, turn)))),
            Ok(ChatEvent::Text(t)) => Some((event("text", json!(t)), Some((chat, turn)))),
            Ok(ChatEvent::End(a)) => Some((event("end", json!(answer(a))), None)),
            Err(e) => Some((event("error", ApiError::from(e).body()), None)),
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
