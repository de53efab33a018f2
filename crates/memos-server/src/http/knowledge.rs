//! Handlers of knowledge bases: `create/` and `delete/knowledgebase`,
//! `add/`, `get/` and `delete/knowledgebase-file`. Files come as JSON (base64 `content`)
//! or as the multipart form the SDK's `add_knowledgebase_file_form` sends (the base in the
//! query string, each file a `file` part).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use base64::Engine;
use memos_core::Error;
use memos_core::service::{FileSelect, NewFile};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Project};
use super::openapi::Answer;
use super::wire::*;

/// `POST create/knowledgebase`
#[utoipa::path(
    post,
    path = "/api/openmem/v1/create/knowledgebase",
    tag = "knowledge bases",
    request_body = CreateKnowledgebaseRequest,
    responses((status = 200, description = "The new base", body = Answer<CreatedKnowledgebase>), super::openapi::Errors)
)]
pub async fn create_knowledgebase(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<CreateKnowledgebaseRequest>,
) -> ApiResult<Json<Answer<CreatedKnowledgebase>>> {
    let name = required(req.knowledgebase_name, "knowledgebase_name")?;
    let id = state
        .service
        .create_knowledgebase(&project, &name, req.knowledgebase_description.as_deref())
        .await?;
    Ok(Answer::ok(CreatedKnowledgebase { id }))
}

/// `POST delete/knowledgebase`: the base, its files and every chunk.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/delete/knowledgebase",
    tag = "knowledge bases",
    request_body = DeleteKnowledgebaseRequest,
    responses((status = 200, description = "Deleted", body = Answer<Success>), super::openapi::Errors)
)]
pub async fn delete_knowledgebase(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<DeleteKnowledgebaseRequest>,
) -> ApiResult<Json<Answer<Success>>> {
    let id = required(req.knowledgebase_id, "knowledgebase_id")?;
    state.service.delete_knowledgebase(&project, &id).await?;
    Ok(Answer::ok(Success { success: true }))
}

/// A file's bytes from a JSON item: base64 (a `data:` URL too), or a web URL to download
/// when `knowledge.fetch_urls` is on (refused otherwise).
fn decode(item: FileItem, i: usize, fetch_urls: bool) -> Result<NewFile, Error> {
    let field = format!("file[{i}].content");
    let content = item
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::required(&field))?;
    let c = content.trim();
    if c.starts_with("http://") || c.starts_with("https://") {
        if fetch_urls {
            return Ok(NewFile {
                name: item.name,
                bytes: vec![],
                url: Some(c.to_string()),
            });
        }
        return Err(Error::invalid(
            &field,
            format!(
                "{field} is a URL, and fetching URLs is off (knowledge.fetch_urls): send the \
                 file's bytes base64-encoded, or upload it as a form"
            ),
        ));
    }
    let b64 = match c.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map_or(rest, |(_, b)| b),
        None => c,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| Error::invalid(&field, format!("{field} is not base64: {e}")))?;
    // A type without a name: the name says it.
    let name = match (item.name, item.kind) {
        (Some(n), _) => Some(n),
        (None, Some(k)) => Some(format!("file-{}.{k}", i + 1)),
        (None, None) => None,
    };
    Ok(NewFile {
        name,
        bytes,
        url: None,
    })
}

/// `POST add/knowledgebase-file`, JSON or multipart.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/add/knowledgebase-file",
    tag = "knowledge bases",
    request_body(content((AddKnowledgebaseFileRequest = "application/json"), ("multipart/form-data")), description = "The files as JSON (base64 `content`) or as the SDK's multipart form (`file` parts, `knowledgebase_id` as a query parameter or a part)"),
    params(("knowledgebase_id" = Option<String>, Query, description = "The base, for a multipart upload")),
    responses((status = 200, description = "Each file read, chunked and searchable, or failed with its reason", body = Answer<Vec<FileDetail>>), super::openapi::Errors)
)]
pub async fn add_knowledgebase_file(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Json<Answer<Vec<FileDetail>>>> {
    if let Some(k) = query
        .keys()
        .find(|k| k.as_str() != "knowledgebase_id" && k.as_str() != "type")
    {
        return Err(Error::invalid(k.clone(), format!("unknown query parameter `{k}`")).into());
    }
    let multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (kb, files) = if multipart {
        let kind = query.get("type").cloned();
        let mut kb = query.get("knowledgebase_id").cloned();
        let mut files = Vec::new();
        let mut form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("the form cannot be read: {e}")))?;
        while let Some(part) = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("the form cannot be read: {e}")))?
        {
            match part.name().unwrap_or_default() {
                "file" | "files" => {
                    let name = part.file_name().map(str::to_string).or_else(|| {
                        kind.as_ref()
                            .map(|k| format!("file-{}.{k}", files.len() + 1))
                    });
                    let bytes = part.bytes().await.map_err(|e| {
                        ApiError::bad_request(format!("a file of the form cannot be read: {e}"))
                    })?;
                    files.push(NewFile {
                        name,
                        bytes: bytes.to_vec(),
                        url: None,
                    });
                }
                "knowledgebase_id" => {
                    kb = Some(part.text().await.map_err(|e| {
                        ApiError::bad_request(format!("the form cannot be read: {e}"))
                    })?);
                }
                other => {
                    return Err(Error::invalid(
                        other.to_string(),
                        format!("unknown form field `{other}`"),
                    )
                    .into());
                }
            }
        }
        (required(kb, "knowledgebase_id")?, files)
    } else {
        let Body(body) = Body::<AddKnowledgebaseFileRequest>::from_request(req, &state).await?;
        let kb = required(body.knowledgebase_id, "knowledgebase_id")?;
        let items = body.file.ok_or_else(|| Error::required("file"))?;
        let fetch = state.service.config().knowledge.fetch_urls;
        let files = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| decode(item, i, fetch))
            .collect::<Result<Vec<_>, _>>()?;
        (kb, files)
    };
    let added = state
        .service
        .add_knowledge_files(&project, &kb, files)
        .await?;
    let list: Vec<FileDetail> = added.into_iter().map(FileDetail::from).collect();
    Ok(Answer::ok(list))
}

/// `POST get/knowledgebase-file`: by ids or by base, newest first, paged.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/get/knowledgebase-file",
    tag = "knowledge bases",
    request_body = GetKnowledgebaseFileRequest,
    responses((status = 200, description = "One page of files", body = Answer<FilePage>), super::openapi::Errors)
)]
pub async fn get_knowledgebase_file(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<GetKnowledgebaseFileRequest>,
) -> ApiResult<Json<Answer<FilePage>>> {
    let select = match (
        req.file_ids.filter(|f| !f.is_empty()),
        req.knowledgebase_id.filter(|k| !k.trim().is_empty()),
    ) {
        (Some(ids), None) => FileSelect::Ids(ids),
        (None, Some(kb)) => FileSelect::Base(kb),
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "knowledgebase_id",
                "give file_ids or knowledgebase_id, not both",
            )
            .into());
        }
        (None, None) => return Err(Error::required("file_ids or knowledgebase_id").into()),
    };
    let page = req.page.unwrap_or(1);
    let size = req.page_size.unwrap_or(20);
    let out = state
        .service
        .knowledge_files(&project, &select, req.kind.as_deref(), page, size)
        .await?;
    let list: Vec<FileDetail> = out.items.into_iter().map(FileDetail::from).collect();
    Ok(Answer::ok(FilePage {
        file_detail_list: list,
        total: out.total,
        page,
        page_size: size,
    }))
}

/// `POST delete/knowledgebase-file`: the files and their chunks, all or nothing.
#[utoipa::path(
    post,
    path = "/api/openmem/v1/delete/knowledgebase-file",
    tag = "knowledge bases",
    request_body = DeleteKnowledgebaseFileRequest,
    responses((status = 200, description = "Deleted", body = Answer<DeletedFiles>), super::openapi::Errors)
)]
pub async fn delete_knowledgebase_file(
    State(state): State<AppState>,
    Project(project, _turn): Project,
    Body(req): Body<DeleteKnowledgebaseFileRequest>,
) -> ApiResult<Json<Answer<DeletedFiles>>> {
    let ids = req.file_ids.ok_or_else(|| Error::required("file_ids"))?;
    let n = state.service.delete_knowledge_files(&project, &ids).await?;
    Ok(Answer::ok(DeletedFiles {
        success: true,
        deleted: n,
    }))
}
