//! Knowledge bases (MemOS's `create/knowledgebase` and friends): a project's documents,
//! searchable beside a user's memories.
//!
//! A knowledge base and its files are [`Doc`]s (the files under the base's partition id);
//! a file's text is read
//! ([`crate::knowledge::parse`]), split into chunks that keep heading, page and place
//! ([`crate::knowledge::chunk`]) and stored as memories of the base's own partition
//! ([`kb_subject`]), one "conversation" per file. So both retrievers, both stores and the
//! embedder take them like any memory, a search of a base is a search of its partition,
//! and deleting a file deletes its conversation.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, InputErrorKind, NotFoundKind, Result};
use crate::ingest::AddContext;
use crate::knowledge::chunk::chunks;
use crate::knowledge::parse::{FileKind, Section, extract};
use crate::model::*;
use crate::store::{Expect, ListQuery, Page, WriteBatch};

use super::MemoryService;
use super::input::{MAX_DELETE_IDS, SearchHit, SearchInput};

/// Document kind of a knowledge base.
const KB: &str = "knowledgebase";
/// Document kind of a file (its subject is the base's id).
const FILE: &str = "kb_file";
/// The id of each project's public knowledge base (`allow_public`); made ids are
/// `kb_` and 16 hex digits, so none can be this.
pub const PUBLIC_KB: &str = "kb_public";
/// The payload key of a large file's task (the task's id is the file's).
pub(super) const FILE_TASK: &str = "kb_file";
/// Files one call may add (MemOS's limit).
pub const MAX_FILES_PER_CALL: usize = 20;
/// Largest file (MemOS's limit).
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;
/// Most bytes one call may add.
pub const MAX_CALL_BYTES: usize = 300 * 1024 * 1024;
/// Longest chunk, in characters.
const CHUNK_CHARS: usize = 800;
/// Tag on every chunk.
pub const KNOWLEDGE_TAG: &str = "knowledge";

/// A knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBase {
    /// Its id (`kb_…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it holds.
    pub description: Option<String>,
    /// Epoch ms.
    pub create_time: Millis,
}

/// A file to add: its name (which says its type) and its bytes, or the URL to download
/// them from (with `knowledge.fetch_urls` on).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    /// The file name, e.g. `policy.pdf`; without one the type comes from the bytes.
    pub name: Option<String>,
    /// Its content.
    pub bytes: Vec<u8>,
    /// Where to download its content from instead.
    pub url: Option<String>,
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Being read.
    Processing,
    /// Read, chunked and searchable.
    Completed,
    /// Could not be read; `reason` says why.
    Failed,
}

impl FileStatus {
    /// MemOS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "PROCESSING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            _ => Self::Processing,
        }
    }
}

/// A file of a knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct KbFile {
    /// Its id.
    pub id: String,
    /// The base it belongs to.
    pub knowledgebase_id: String,
    /// Its name.
    pub name: String,
    /// Its type (`pdf`, `docx`, …), once known.
    pub kind: Option<String>,
    /// Its size in bytes.
    pub size_bytes: usize,
    /// Where it stands.
    pub status: FileStatus,
    /// Why it failed.
    pub reason: Option<String>,
    /// How many chunks it became.
    pub chunks: usize,
    /// Epoch ms.
    pub create_time: Millis,
    /// Epoch ms.
    pub update_time: Millis,
}

impl KbFile {
    fn doc(&self, project_id: &str) -> Doc {
        Doc {
            kind: FILE.into(),
            project_id: project_id.into(),
            // The base's partition, which no client can name: erasing a user never
            // reaches a base's files, and erasing the partition takes them along.
            user_id: kb_subject(&self.knowledgebase_id),
            id: self.id.clone(),
            body: json!({
                "name": self.name,
                "type": self.kind,
                "size_bytes": self.size_bytes,
                "status": self.status.as_str(),
                "reason": self.reason,
                "chunks": self.chunks,
            }),
            create_time: self.create_time,
            update_time: self.update_time,
        }
    }

    fn from_doc(d: Doc) -> Self {
        let b = &d.body;
        Self {
            name: b["name"].as_str().unwrap_or_default().to_string(),
            kind: b["type"].as_str().map(str::to_string),
            size_bytes: b["size_bytes"].as_u64().unwrap_or(0) as usize,
            status: FileStatus::parse(b["status"].as_str().unwrap_or_default()),
            reason: b["reason"].as_str().map(str::to_string),
            chunks: b["chunks"].as_u64().unwrap_or(0) as usize,
            id: d.id,
            knowledgebase_id: subject_kb(&d.user_id).unwrap_or(&d.user_id).to_string(),
            create_time: d.create_time,
            update_time: d.update_time,
        }
    }
}

/// Which knowledge bases a search also ranks.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum KbSelect {
    /// None (MemOS's `[]`).
    #[default]
    None,
    /// These.
    Some(Vec<String>),
    /// Every base of the project (MemOS's `"all"`).
    All,
}

/// Which files a listing names.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSelect {
    /// These files.
    Ids(Vec<String>),
    /// The files of this base.
    Base(String),
}

fn kb_not_found(id: &str) -> Error {
    Error::not_found(format!("knowledge base {id}"), NotFoundKind::KnowledgeBase)
}

impl MemoryService {
    /// The project's knowledge bases, by id.
    pub async fn knowledgebases(&self, project_id: &str) -> Result<Vec<KnowledgeBase>> {
        Ok(self
            .store
            .list_docs(DocSelect {
                kind: Some(KB),
                project_id: Some(project_id),
                user_id: Some(""),
                id: None,
            })
            .await?
            .into_iter()
            .map(|d| KnowledgeBase {
                name: d.body["name"].as_str().unwrap_or_default().to_string(),
                description: d.body["description"].as_str().map(str::to_string),
                id: d.id,
                create_time: d.create_time,
            })
            .collect())
    }

    pub(super) async fn knowledgebase(&self, project_id: &str, id: &str) -> Result<KnowledgeBase> {
        self.knowledgebases(project_id)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| kb_not_found(id))
    }

    /// Creates a knowledge base (`create/knowledgebase`); returns its id.
    pub async fn create_knowledgebase(
        &self,
        project_id: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<String> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::required("knowledgebase_name"));
        }
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "knowledgebase_name",
                "knowledgebase_name holds at most 100 characters and no control characters",
            ));
        }
        if description.is_some_and(|d| d.chars().count() > 2000) {
            return Err(Error::invalid(
                "knowledgebase_description",
                "knowledgebase_description holds at most 2000 characters",
            ));
        }
        let id = format!("kb_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        self.put_knowledgebase(project_id, &id, name, description)
            .await?;
        Ok(id)
    }

    /// Writes a knowledge base's record (an upsert: writing the same one twice is harmless).
    async fn put_knowledgebase(
        &self,
        project_id: &str,
        id: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<()> {
        let now = now_millis();
        self.store
            .put_docs(vec![Doc {
                kind: KB.into(),
                project_id: project_id.into(),
                user_id: String::new(),
                id: id.into(),
                body: json!({"name": name, "description": description}),
                create_time: now,
                update_time: now,
            }])
            .await
    }

    /// The project's public knowledge base, where adds with `allow_public` also write
    /// (MemOS's public library), made on first use; any user's search reaches it by naming
    /// [`PUBLIC_KB`] or with `knowledgebase_ids: "all"`.
    pub(super) async fn public_knowledgebase(&self, project_id: &str) -> Result<String> {
        match self.knowledgebase(project_id, PUBLIC_KB).await {
            Ok(kb) => return Ok(kb.id),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // Two first uses at once write the same record.
        self.put_knowledgebase(
            project_id,
            PUBLIC_KB,
            "Public",
            Some("What users' adds allowed into the public library (allow_public)"),
        )
        .await?;
        Ok(PUBLIC_KB.into())
    }

    /// Deletes a knowledge base with its files and every chunk (`delete/knowledgebase`).
    pub async fn delete_knowledgebase(&self, project_id: &str, id: &str) -> Result<()> {
        self.knowledgebase(project_id, id).await?;
        match self.delete_user(project_id, &kb_subject(id)).await {
            Ok(_) => {}
            // A base without files has no partition yet.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.store
            .delete_docs(project_id, FILE, Some(&kb_subject(id)), None)
            .await?;
        self.store
            .delete_docs(project_id, KB, Some(""), Some(id))
            .await?;
        Ok(())
    }

    /// Adds files to a knowledge base (`add/knowledgebase-file`): each read, chunked and
    /// stored, searchable when this returns; a file of `knowledge.background_bytes` or more
    /// is `PROCESSING` instead, read by a task that survives a restart. A file that cannot
    /// be read is recorded as `FAILED` with its reason; the others are stored all the same.
    pub async fn add_knowledge_files(
        &self,
        project_id: &str,
        kb_id: &str,
        files: Vec<NewFile>,
    ) -> Result<Vec<KbFile>> {
        self.knowledgebase(project_id, kb_id).await?;
        if files.is_empty() {
            return Err(Error::input(
                "file",
                "file holds no files",
                InputErrorKind::Empty,
            ));
        }
        // MemOS's limits, with its codes, checked before anything is stored.
        if files.len() > MAX_FILES_PER_CALL {
            return Err(Error::input(
                "file",
                format!("at most {MAX_FILES_PER_CALL} files per call"),
                InputErrorKind::TooManyFiles,
            ));
        }
        if let Some((i, f)) = files
            .iter()
            .enumerate()
            .find(|(_, f)| f.bytes.len() > MAX_FILE_BYTES)
        {
            return Err(Error::input(
                format!("file[{i}]"),
                format!(
                    "file[{i}] holds {} bytes; at most {MAX_FILE_BYTES} per file",
                    f.bytes.len()
                ),
                InputErrorKind::FileTooLarge,
            ));
        }
        let total: usize = files.iter().map(|f| f.bytes.len()).sum();
        if total > MAX_CALL_BYTES {
            return Err(Error::input(
                "file",
                format!("the files hold {total} bytes; at most {MAX_CALL_BYTES} per call"),
                InputErrorKind::FilesTooLarge,
            ));
        }
        let scope = Scope::new(project_id, kb_subject(kb_id));
        let mut out = Vec::with_capacity(files.len());
        for (i, mut f) in files.into_iter().enumerate() {
            let now = now_millis();
            let fetched = match f.url.take() {
                Some(url) => match self.fetch(&url).await {
                    Ok(bytes) => {
                        f.bytes = bytes;
                        f.name = f.name.or_else(|| {
                            url.split(['?', '#'])
                                .next()
                                .and_then(|p| p.rsplit('/').next())
                                .map(str::to_string)
                        });
                        Ok(())
                    }
                    Err(reason) => Err(reason),
                },
                None => Ok(()),
            };
            let name = f
                .name
                .clone()
                .map(|n| {
                    n.rsplit(['/', '\\'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("file-{}", i + 1));
            let mut file = KbFile {
                id: uuid::Uuid::new_v4().simple().to_string(),
                knowledgebase_id: kb_id.into(),
                name: name.chars().take(200).collect(),
                kind: None,
                size_bytes: f.bytes.len(),
                status: FileStatus::Failed,
                reason: None,
                chunks: 0,
                create_time: now,
                update_time: now,
            };
            let read = if let Err(reason) = fetched {
                Err(reason)
            } else if f.bytes.len() > MAX_FILE_BYTES {
                Err(format!(
                    "the file holds {} bytes; at most {MAX_FILE_BYTES}",
                    f.bytes.len()
                ))
            } else {
                FileKind::detect(&file.name, &f.bytes).map(|kind| {
                    file.kind = Some(kind.as_str().into());
                    (kind, f.bytes)
                })
            };
            match read {
                Err(reason) => file.reason = Some(reason),
                // Large files are read by the task worker: the call answers at once with
                // the file `PROCESSING`. The bytes ride in the task, which is durable
                // before the call answers, so a restart finishes the file.
                Ok((_, bytes)) if bytes.len() >= self.config.knowledge.background_bytes => {
                    file.status = FileStatus::Processing;
                    file.update_time = now_millis();
                    // The file's record first: a crash before the task is written leaves a
                    // record that reads as failed (no task), never chunks nobody can list.
                    self.store.put_docs(vec![file.doc(project_id)]).await?;
                    self.accept_task(file_task(&scope, &file, &bytes), vec![])
                        .await?;
                    out.push(file);
                    continue;
                }
                Ok((kind, bytes)) => match self.read_sections(kind, bytes).await {
                    Err(reason) => file.reason = Some(reason),
                    Ok(sections) => {
                        let memories = chunk_memories(&scope, &file, &sections);
                        file.chunks = memories.len();
                        self.write(
                            WriteBatch {
                                upsert_memories: memories,
                                ..Default::default()
                            },
                            vec![],
                        )
                        .await?;
                        file.status = FileStatus::Completed;
                    }
                },
            }
            file.update_time = now_millis();
            self.store.put_docs(vec![file.doc(project_id)]).await?;
            out.push(file);
        }
        Ok(out)
    }

    /// A file's text as sections, read off the async executor and bounded in time; a
    /// failure is the file's reason. PDF and DOCX parsing is CPU work, and a parser that
    /// never returns keeps its blocking thread (a thread cannot be stopped from outside),
    /// but the file is refused and the caller goes on.
    async fn read_sections(
        &self,
        kind: FileKind,
        bytes: Vec<u8>,
    ) -> std::result::Result<Vec<Section>, String> {
        let limit = Duration::from_millis(self.config.knowledge.read_timeout_ms);
        match tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || extract(kind, &bytes)),
        )
        .await
        {
            Err(_) => Err(format!(
                "reading the file took longer than {} ms; it was refused",
                limit.as_millis()
            )),
            Ok(joined) => joined
                .map_err(|e| format!("reading the file failed: {e}"))
                .and_then(|r| r),
        }
    }

    /// The work of a large file's task ([`FILE_TASK`]): reads it, writes its chunks and
    /// leaves `task` completed with their ids, or failed with the reason the file cannot
    /// be read. The chunks' ids derive from the file's id, so a task run again after a
    /// crash rewrites the same chunks instead of adding a second set; the write lands only
    /// while the task still runs, so a file deleted meanwhile (its task failed by the
    /// delete) or a base erased (its task gone) gets no chunks back.
    pub(super) async fn run_file_task(&self, task: &mut Task) -> Result<()> {
        let spec = &task.payload[FILE_TASK];
        let (Some(kb_id), Some(name), Some(content)) = (
            spec["knowledgebase_id"].as_str(),
            spec["name"].as_str(),
            spec["content"].as_str(),
        ) else {
            return Err(Error::Corrupt(format!(
                "task {}: not a knowledge-base file task",
                task.id
            )));
        };
        let bytes = BASE64
            .decode(content)
            .map_err(|e| Error::Corrupt(format!("task {}: file content: {e}", task.id)))?;
        let kind = FileKind::detect(name, &bytes);
        let file = KbFile {
            id: task.id.clone(),
            knowledgebase_id: kb_id.to_string(),
            name: name.to_string(),
            // The chunks are tagged with it, as a file read during the call is.
            kind: kind.as_ref().ok().map(|k| k.as_str().to_string()),
            size_bytes: bytes.len(),
            status: FileStatus::Processing,
            reason: None,
            chunks: 0,
            create_time: task.create_time,
            update_time: task.create_time,
        };
        let read = match kind {
            Ok(kind) => self.read_sections(kind, bytes).await,
            Err(reason) => Err(reason),
        };
        match read {
            Err(reason) => {
                task.status = TaskStatus::Failed;
                task.error = Some(reason);
            }
            Ok(sections) => {
                let memories = chunk_memories(&task.scope, &file, &sections);
                task.memory_ids = memories.iter().map(|m| m.id.clone()).collect();
                self.write(
                    WriteBatch {
                        upsert_memories: memories,
                        lease: Some(self.lease()),
                        expect: Expect::task(&task.scope.project_id, &task.id),
                        ..Default::default()
                    },
                    vec![],
                )
                .await?;
                task.status = TaskStatus::Completed;
            }
        }
        // Done with the bytes: the finished task keeps only what names the file.
        if let Some(spec) = task.payload[FILE_TASK].as_object_mut() {
            spec.remove("content");
        }
        Ok(())
    }

    /// Writes copies of what an add made into the knowledge bases its client allowed
    /// (`allow_knowledgebase_ids`), where every search of those bases finds them. A copy
    /// is the base's content from then on: it keeps the text, key, type, time and tags,
    /// names its origin in `info.shared_from`, and drops the sources (the user's own
    /// messages stay the user's). Its id derives from the base and the original's, so a
    /// task run again writes the same copies; a task's copies land only while the task
    /// runs (an erase of the user meanwhile shares nothing).
    pub(super) async fn share_with_knowledgebases(
        &self,
        ctx: &AddContext,
        ids: &[String],
        task: Option<&str>,
    ) -> Result<()> {
        if ctx.knowledgebase_ids.is_empty() || ids.is_empty() {
            return Ok(());
        }
        let project = &ctx.scope.project_id;
        let made: Vec<Memory> = self
            .store
            .get_memories(project, ids)
            .await?
            .into_iter()
            .filter(|m| {
                m.scope == ctx.scope
                    && m.status == MemoryStatus::Activated
                    && m.memory_type != MemoryType::ToolTrajectoryMemory
            })
            .collect();
        let mut copies = Vec::new();
        for kb in &ctx.knowledgebase_ids {
            let scope = Scope::new(project.clone(), kb_subject(kb));
            for m in &made {
                let mut c = m.clone();
                let id = Sha256::digest(format!("kb-share:{kb}:{}", m.id));
                c.id = hex::encode(&id[..16]);
                c.scope = scope.clone();
                c.sources = vec![];
                c.info.insert("knowledgebase_id".into(), json!(kb));
                c.info.insert(
                    "shared_from".into(),
                    json!({"user_id": m.scope.user_id, "memory_id": m.id}),
                );
                copies.push(c);
            }
        }
        self.write(
            WriteBatch {
                upsert_memories: copies,
                lease: task.map(|_| self.lease()),
                expect: task.map_or_else(Expect::default, |t| Expect::task(project, t)),
                ..Default::default()
            },
            vec![],
        )
        .await
    }

    /// A background file's state is its task's: the worker writes the chunks and the task,
    /// never the file's record, so a file deleted while it was read cannot be written back
    /// by the worker. A record without a task is a crash between the two writes of the add.
    async fn settle_file(&self, project_id: &str, file: &mut KbFile) -> Result<()> {
        match self.store.get_task(project_id, &file.id).await? {
            Some(t) => match t.status {
                TaskStatus::Running => {}
                TaskStatus::Completed => {
                    file.status = FileStatus::Completed;
                    file.chunks = t.memory_ids.len();
                    file.update_time = t.update_time;
                }
                TaskStatus::Failed => {
                    file.status = FileStatus::Failed;
                    file.reason = t.error;
                    file.update_time = t.update_time;
                }
            },
            None => {
                file.status = FileStatus::Failed;
                file.reason =
                    Some("the server stopped before the file was queued; add it again".into());
            }
        }
        Ok(())
    }

    /// Downloads a file's bytes (only with `knowledge.fetch_urls` on), at most
    /// [`MAX_FILE_BYTES`]; a failure is the file's reason.
    async fn fetch(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let cfg = &self.config.knowledge;
        if !cfg.fetch_urls {
            return Err("fetching URLs is off (knowledge.fetch_urls)".into());
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(cfg.fetch_timeout_ms))
            .build()
            .map_err(|e| format!("cannot download: {e}"))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("the download failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("the download answered HTTP {}", resp.status()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("the download failed: {e}"))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_FILE_BYTES {
                return Err(format!("the file is larger than {MAX_FILE_BYTES} bytes"));
            }
        }
        Ok(bytes)
    }

    /// Files by id, or a base's files, newest first and paged (`get/knowledgebase-file`).
    pub async fn knowledge_files(
        &self,
        project_id: &str,
        select: &FileSelect,
        kind: Option<&str>,
        page: usize,
        size: usize,
    ) -> Result<Page<KbFile>> {
        if page == 0 || size == 0 || size > 100 {
            return Err(Error::invalid(
                "page_size",
                "page starts at 1 and page_size is between 1 and 100",
            ));
        }
        let mut files: Vec<KbFile> = match select {
            FileSelect::Base(kb) => {
                self.knowledgebase(project_id, kb).await?;
                self.store
                    .list_docs(DocSelect {
                        kind: Some(FILE),
                        project_id: Some(project_id),
                        user_id: Some(&kb_subject(kb)),
                        id: None,
                    })
                    .await?
                    .into_iter()
                    .map(KbFile::from_doc)
                    .collect()
            }
            FileSelect::Ids(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    out.extend(
                        self.store
                            .list_docs(DocSelect {
                                kind: Some(FILE),
                                project_id: Some(project_id),
                                user_id: None,
                                id: Some(id),
                            })
                            .await?
                            .into_iter()
                            .map(KbFile::from_doc),
                    );
                }
                out
            }
        };
        for f in files
            .iter_mut()
            .filter(|f| f.status == FileStatus::Processing)
        {
            self.settle_file(project_id, f).await?;
        }
        if let Some(k) = kind {
            files.retain(|f| f.kind.as_deref() == Some(k));
        }
        files.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.id.cmp(&b.id)));
        let total = files.len();
        let items = files
            .into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .collect();
        Ok(Page { items, total })
    }

    /// Deletes files and their chunks (`delete/knowledgebase-file`); all or nothing: an
    /// unknown id deletes none.
    pub async fn delete_knowledge_files(&self, project_id: &str, ids: &[String]) -> Result<usize> {
        if ids.is_empty() {
            return Err(Error::input(
                "file_ids",
                "file_ids is empty",
                InputErrorKind::Empty,
            ));
        }
        if ids.len() > 100 {
            return Err(Error::invalid("file_ids", "at most 100 file_ids per call"));
        }
        let found = self
            .knowledge_files(project_id, &FileSelect::Ids(ids.to_vec()), None, 1, 100)
            .await?;
        for id in ids {
            if !found.items.iter().any(|f| &f.id == id) {
                return Err(Error::not_found(
                    format!("knowledge base file {id}"),
                    NotFoundKind::Record,
                ));
            }
        }
        for f in &found.items {
            let subject = kb_subject(&f.knowledgebase_id);
            let scope = Scope::new(project_id, subject.clone());
            // A file still being read: its task is failed first, so the worker's write of
            // the chunks (which lands only while the task runs) is refused from now on,
            // and whatever it wrote before is among the chunks deleted below.
            if f.status == FileStatus::Processing
                && let Some(mut t) = self.store.get_task(project_id, &f.id).await?
                && t.status == TaskStatus::Running
            {
                t.status = TaskStatus::Failed;
                t.error = Some("the file was deleted".into());
                t.update_time = now_millis();
                if let Some(spec) = t.payload[FILE_TASK].as_object_mut() {
                    spec.remove("content");
                }
                self.record(WriteBatch {
                    task: Some(t),
                    ..Default::default()
                })
                .await?;
            }
            loop {
                let page = self
                    .store
                    .list_memories(
                        &scope,
                        &ListQuery {
                            conversation_id: Some(f.id.clone()),
                            limit: MAX_DELETE_IDS,
                            ..Default::default()
                        },
                    )
                    .await?;
                if page.items.is_empty() {
                    break;
                }
                let chunk_ids: Vec<String> = page.items.into_iter().map(|m| m.id).collect();
                self.delete(project_id, Some(&subject), &chunk_ids, true)
                    .await?;
            }
            self.store
                .delete_docs(project_id, FILE, Some(&subject), Some(&f.id))
                .await?;
        }
        Ok(found.items.len())
    }

    /// The chunks of the named knowledge bases most relevant to a query, ranked as a
    /// user's memories are. An unknown base is a 404 naming it.
    pub async fn search_knowledge(
        &self,
        project_id: &str,
        select: &KbSelect,
        input: &SearchInput,
    ) -> Result<Vec<SearchHit>> {
        let ids: Vec<String> = match select {
            KbSelect::None => return Ok(vec![]),
            KbSelect::All => self
                .knowledgebases(project_id)
                .await?
                .into_iter()
                .map(|k| k.id)
                .collect(),
            KbSelect::Some(ids) => {
                let known = self.knowledgebases(project_id).await?;
                for id in ids {
                    if !known.iter().any(|k| &k.id == id) {
                        return Err(kb_not_found(id));
                    }
                }
                ids.clone()
            }
        };
        let mut hits = Vec::new();
        for id in ids {
            // The request's filter and conversation describe the user's memories.
            let found = self
                .search(
                    project_id,
                    SearchInput {
                        user_id: kb_subject(&id),
                        conversation_id: None,
                        filter: None,
                        ..input.clone()
                    },
                )
                .await?;
            hits.extend(found);
        }
        hits.sort_by(|a, b| b.relativity.total_cmp(&a.relativity));
        Ok(hits)
    }
}

/// The task that reads a large file in the background, its bytes inside.
fn file_task(scope: &Scope, file: &KbFile, bytes: &[u8]) -> Task {
    Task {
        id: file.id.clone(),
        scope: scope.clone(),
        status: TaskStatus::Running,
        payload: json!({FILE_TASK: {
            "knowledgebase_id": file.knowledgebase_id,
            "name": file.name,
            "content": BASE64.encode(bytes),
        }}),
        memory_ids: vec![],
        error: None,
        create_time: file.create_time,
        update_time: file.update_time,
    }
}

/// A file's sections as chunks, each a memory of the base's partition `scope` in the file's
/// "conversation", keeping heading, page and place. A chunk's id derives from the file's id
/// and its place, so writing a file's chunks twice writes the same memories.
fn chunk_memories(scope: &Scope, file: &KbFile, sections: &[Section]) -> Vec<Memory> {
    let now = now_millis();
    chunks(sections, CHUNK_CHARS)
        .iter()
        .map(|c| {
            let mut info = Map::new();
            info.insert("knowledgebase_id".into(), json!(file.knowledgebase_id));
            info.insert("file_id".into(), json!(file.id));
            info.insert("file_name".into(), json!(file.name));
            info.insert("chunk".into(), json!(c.index));
            if let Some(p) = c.page {
                info.insert("page".into(), json!(p));
            }
            if let Some(h) = &c.heading {
                info.insert("heading".into(), json!(h));
            }
            let key = match &c.heading {
                Some(h) => format!("{} › {h}", file.name),
                None => file.name.clone(),
            };
            let id = Sha256::digest(format!("kb-chunk:{}:{}", file.id, c.index));
            Memory {
                id: hex::encode(&id[..16]),
                scope: scope.clone(),
                conversation_id: file.id.clone(),
                key: key.chars().take(200).collect(),
                value: c.text.clone(),
                memory_type: MemoryType::LongTermMemory,
                memory_time: None,
                status: MemoryStatus::Activated,
                confidence: 1.0,
                tags: vec![
                    KNOWLEDGE_TAG.to_string(),
                    file.kind.clone().unwrap_or_default(),
                ],
                info,
                agent_id: None,
                app_id: None,
                sources: vec![],
                reasoning: None,
                create_time: now,
                update_time: now,
            }
        })
        .collect()
}

/// A user's hits and a knowledge base's, as one list ranked by relevance, at most `limit`.
pub fn merge_hits(mine: Vec<SearchHit>, knowledge: Vec<SearchHit>, limit: usize) -> Vec<SearchHit> {
    if knowledge.is_empty() {
        return mine;
    }
    let mut all: Vec<SearchHit> = mine.into_iter().chain(knowledge).collect();
    // Stable: equal relevance keeps the user's memory first.
    all.sort_by(|a, b| b.relativity.total_cmp(&a.relativity));
    all.truncate(limit);
    all
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::store::{InMemoryStore, MemoryStore};

    async fn start(store: &Arc<dyn MemoryStore>) -> Arc<MemoryService> {
        MemoryService::start(store.clone(), None, None, Config::default())
            .await
            .unwrap()
    }

    /// A large file as the add leaves it: its record `PROCESSING` and its task.
    fn pending(kb: &str, text: &str) -> (KbFile, Task) {
        let file = KbFile {
            id: "f1".into(),
            knowledgebase_id: kb.into(),
            name: "handbook.md".into(),
            kind: Some("md".into()),
            size_bytes: text.len(),
            status: FileStatus::Processing,
            reason: None,
            chunks: 0,
            create_time: 1,
            update_time: 1,
        };
        let task = file_task(&Scope::new("p", kb_subject(kb)), &file, text.as_bytes());
        (file, task)
    }

    /// Three sections, so three chunks.
    const HANDBOOK: &str = "# Hours\nThe office opens at nine.\n\n# Parking\nVisitors park in lot C.\n\n# Badges\nLost badges cost 20 euros.";

    async fn chunks_of(store: &Arc<dyn MemoryStore>, kb: &str) -> Vec<Memory> {
        store
            .list_memories(
                &Scope::new("p", kb_subject(kb)),
                &ListQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items
    }

    async fn file(svc: &MemoryService, id: &str) -> Option<KbFile> {
        svc.knowledge_files("p", &FileSelect::Ids(vec![id.into()]), None, 1, 10)
            .await
            .unwrap()
            .items
            .pop()
    }

    #[tokio::test]
    async fn a_restart_finishes_a_file_read_in_the_background() {
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let kb = start(&store)
            .await
            .create_knowledgebase("p", "Handbook", None)
            .await
            .unwrap();
        // What a crash right after the call answered leaves: the record and the task.
        let (f, task) = pending(&kb, HANDBOOK);
        store.put_docs(vec![f.doc("p")]).await.unwrap();
        store
            .write(WriteBatch {
                task: Some(task),
                ..Default::default()
            })
            .await
            .unwrap();
        let svc = start(&store).await;
        let mut done = None;
        for _ in 0..500 {
            let got = file(&svc, "f1").await.unwrap();
            if got.status != FileStatus::Processing {
                done = Some(got);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let done = done.expect("the file was never finished");
        assert_eq!((done.status, done.chunks), (FileStatus::Completed, 3));
        let hits = svc
            .search_knowledge(
                "p",
                &KbSelect::Some(vec![kb.clone()]),
                &SearchInput {
                    user_id: "u".into(),
                    query: "where do visitors park".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(hits[0].memory.value.contains("lot C"), "{hits:?}");
        assert_eq!(hits[0].memory.tags, [KNOWLEDGE_TAG, "md"]);
        // The finished task no longer carries the bytes.
        let t = svc.task("p", "f1").await.unwrap();
        assert!(t.payload[FILE_TASK].get("content").is_none());
    }

    /// A service with a base and a large file's record and task, the task held by the
    /// service's own lease, so that its claimer leaves it to the test.
    async fn held(store: &Arc<dyn MemoryStore>) -> (Arc<MemoryService>, String, Task) {
        let svc = start(store).await;
        let kb = svc
            .create_knowledgebase("p", "Handbook", None)
            .await
            .unwrap();
        let (f, task) = pending(&kb, HANDBOOK);
        store.put_docs(vec![f.doc("p")]).await.unwrap();
        svc.record(WriteBatch {
            task: Some(task.clone()),
            lease: Some(svc.lease()),
            ..Default::default()
        })
        .await
        .unwrap();
        (svc, kb, task)
    }

    #[tokio::test]
    async fn a_file_task_run_twice_writes_its_chunks_once() {
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let (svc, kb, task) = held(&store).await;
        // As after a crash between the chunks' write and the task's completion.
        for _ in 0..2 {
            let mut t = task.clone();
            svc.run_file_task(&mut t).await.unwrap();
            assert_eq!(t.status, TaskStatus::Completed);
            assert_eq!(t.memory_ids.len(), 3);
        }
        assert_eq!(chunks_of(&store, &kb).await.len(), 3);
    }

    #[tokio::test]
    async fn a_file_deleted_while_it_is_read_gets_nothing_back() {
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let (svc, kb, task) = held(&store).await;
        assert_eq!(
            svc.delete_knowledge_files("p", &["f1".into()])
                .await
                .unwrap(),
            1
        );
        // The worker, still reading when the delete came, finishes after it.
        let mut t = task.clone();
        let err = svc.run_file_task(&mut t).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotFound {
                    kind: NotFoundKind::Task,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(chunks_of(&store, &kb).await.is_empty());
        assert!(file(&svc, "f1").await.is_none());
        let t = svc.task("p", "f1").await.unwrap();
        assert_eq!(t.status, TaskStatus::Failed);
        assert!(t.payload[FILE_TASK].get("content").is_none());
    }
}
