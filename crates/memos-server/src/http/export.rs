//! `POST export/user`: a user's data as the JSON Lines of `memos export` (the user's right
//! to take it elsewhere; `memos import` reads it back, ids kept).
//!
//! The lines stream as the store is walked, so a large user never sits whole in memory.
//! An error before the first line (an unknown user) answers in the envelope; one after it
//! ends the stream before its `end` line, which an import then refuses as cut off.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use memos_core::Error;
use memos_core::service::ExportRecord;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Project};
use super::wire::{ExportUserRequest, required};

/// `POST export/user`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/export/user",
    tag = "memories",
    request_body = ExportUserRequest,
    responses((status = 200, description = "The user's export, one JSON record per line (`memos-export/1`: a header, documents, memories of every status, history, messages, optional vectors, an end line with the counts)", content_type = "application/x-ndjson", body = String), super::openapi::Errors)
)]
pub async fn export_user(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<ExportUserRequest>,
) -> ApiResult<Response> {
    let user = required(req.user_id, "user_id")?;
    let vectors = req.include_vectors.unwrap_or(false);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportRecord>(256);
    let service = state.service.clone();
    let walk =
        tokio::spawn(async move { service.export_user(&project, &user, vectors, &tx).await });
    // The header comes first, or the walk ended with why it could not start.
    let Some(header) = rx.recv().await else {
        let failed = walk
            .await
            .map_err(|e| Error::Unavailable(format!("the export stopped: {e}")))?;
        return Err(ApiError::from(failed.err().unwrap_or_else(|| {
            Error::Unavailable("the export ended before it began".into())
        })));
    };
    let first = line(&header);
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let r = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(line(&r)), rx))
    });
    let body =
        futures_util::StreamExt::chain(futures_util::stream::once(async move { Ok(first) }), rest);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

fn line(r: &ExportRecord) -> Bytes {
    let mut v = serde_json::to_vec(r).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}
