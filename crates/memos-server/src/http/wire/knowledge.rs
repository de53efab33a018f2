//! Knowledge bases: requests and answers, in MemOS's shapes.

use memos_core::Error;
use memos_core::service::{KbFile, KbSelect};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// MemOS's `knowledgebase_ids`: `null` or `[]` for none, a list, or `"all"`.
pub fn kb_select(v: Option<Value>, field: &str) -> Result<KbSelect, Error> {
    match v {
        None | Some(Value::Null) => Ok(KbSelect::None),
        Some(Value::String(s)) if s == "all" => Ok(KbSelect::All),
        Some(Value::Array(a)) if a.is_empty() => Ok(KbSelect::None),
        Some(Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("{field}[{i}]"),
                            format!("{field}[{i}] must be a knowledge base id"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(KbSelect::Some),
        Some(_) => Err(Error::invalid(
            field,
            format!("{field} must be a list of knowledge base ids, [] or \"all\""),
        )),
    }
}

/// `create/knowledgebase` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKnowledgebaseRequest {
    /// Its name.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub knowledgebase_name: Option<String>,
    /// What it holds.
    #[serde(default)]
    pub knowledgebase_description: Option<String>,
}

/// `delete/knowledgebase` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteKnowledgebaseRequest {
    /// Which.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub knowledgebase_id: Option<String>,
}

/// One file of an `add/knowledgebase-file` JSON request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileItem {
    /// The file's bytes, base64-encoded (a URL is refused: memos fetches nothing).
    #[serde(default)]
    pub content: Option<String>,
    /// Its name, which says its type (`policy.pdf`).
    #[serde(default)]
    pub name: Option<String>,
    /// Its type when the name does not say it (`pdf`, `docx`, `txt`, `md`, `json`, `html`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `add/knowledgebase-file` JSON request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKnowledgebaseFileRequest {
    /// The base.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub knowledgebase_id: Option<String>,
    /// The files.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<FileItem>, min_items = 1)]
    pub file: Option<Vec<FileItem>>,
}

/// `get/knowledgebase-file` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetKnowledgebaseFileRequest {
    /// These files, or
    #[serde(default)]
    pub file_ids: Option<Vec<String>>,
    /// the files of this base.
    #[serde(default)]
    pub knowledgebase_id: Option<String>,
    /// Only files of this type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// 1-based page.
    #[serde(default)]
    pub page: Option<usize>,
    /// Page size (default 20, at most 100).
    #[serde(default)]
    pub page_size: Option<usize>,
}

/// `delete/knowledgebase-file` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteKnowledgebaseFileRequest {
    /// The files.
    #[serde(default)]
    #[schema(required = true, value_type = Vec<String>, min_items = 1)]
    pub file_ids: Option<Vec<String>>,
}

/// A file in answers (MemOS's `id, name, sizeMB, status`, and more).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileDetail {
    /// Its id.
    pub id: String,
    /// The base it belongs to.
    pub knowledgebase_id: String,
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its size in MB.
    #[serde(rename = "sizeMB")]
    pub size_mb: f64,
    /// `PROCESSING`, `COMPLETED` or `FAILED`.
    pub status: &'static str,
    /// Why it failed.
    pub reason: Option<String>,
    /// How many chunks it became.
    pub chunks: usize,
    /// Epoch ms.
    pub create_time: i64,
    /// Epoch ms.
    pub update_time: i64,
}

impl From<KbFile> for FileDetail {
    fn from(f: KbFile) -> Self {
        Self {
            id: f.id,
            knowledgebase_id: f.knowledgebase_id,
            name: f.name,
            kind: f.kind,
            size_mb: f.size_bytes as f64 / (1024.0 * 1024.0),
            status: f.status.as_str(),
            reason: f.reason,
            chunks: f.chunks,
            create_time: f.create_time,
            update_time: f.update_time,
        }
    }
}

/// An answer that only says it worked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Success {
    /// Always true.
    pub success: bool,
}

/// `create/knowledgebase`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKnowledgebase {
    /// The new base's id.
    pub id: String,
}

/// `get/knowledgebase-file`'s answer: one page of files, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilePage {
    /// The page.
    pub file_detail_list: Vec<FileDetail>,
    /// Files in all pages.
    pub total: usize,
    /// This page's number, from 1.
    pub page: usize,
    /// The page size.
    pub page_size: usize,
}

/// `delete/knowledgebase-file`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedFiles {
    /// Always true on success.
    pub success: bool,
    /// How many files went, with their chunks.
    pub deleted: usize,
}
