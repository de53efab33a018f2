//! Changes a client asks for: deletes (by ids, by filter, a whole user), edits, and
//! feedback in the user's words.

use std::collections::HashSet;

use serde_json::Map;

use crate::error::{Error, InputErrorKind, NotFoundKind, Result};
use crate::filter::Filter;
use crate::model::*;
use crate::search::bm25::IndexOp;
use crate::search::vector::VectorOp;
use crate::store::{Expect, ListQuery, WriteBatch};

use super::MemoryService;
use super::input::{
    AddInput, AddOutcome, FeedbackInput, MAX_DELETE_IDS, MAX_KEY_CHARS, NewMessage, UpdateInput,
};
use super::write::{fresh_reads, indexed, settle};

impl MemoryService {
    /// Deletes memories by id, all or nothing: one unknown id (or one of another user, when
    /// `user_id` is given) deletes none. Soft by default: the memory is marked `deleted`, kept
    /// with its history and never returned again. `hard` removes it, its vector and its
    /// history for good (privacy requests).
    pub async fn delete(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        ids: &[String],
        hard: bool,
    ) -> Result<usize> {
        if ids.is_empty() {
            return Err(Error::input(
                "memory_ids",
                "memory_ids must name at least one memory",
                InputErrorKind::Empty,
            ));
        }
        if ids.len() > MAX_DELETE_IDS {
            return Err(Error::invalid(
                "memory_ids",
                format!("at most {MAX_DELETE_IDS} ids per delete"),
            ));
        }
        if let Some(u) = user_id {
            self.check_user(u)?;
        }
        let unique: Vec<String> = ids
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        fresh_reads(|| self.delete_once(project_id, user_id, &unique, hard)).await
    }

    /// One attempt at [`Self::delete`] of `unique` ids.
    async fn delete_once(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        unique: &[String],
        hard: bool,
    ) -> Result<usize> {
        // Read and write under one lock: an edit racing this delete in this process can
        // neither write the memory back after it nor be overwritten by a stale copy; the
        // store checks what a soft delete read against edits by other servers.
        let guard = self.lock_writes().await;
        let found_memories: Vec<Memory> = self
            .store
            .get_memories(project_id, unique)
            .await?
            .into_iter()
            .filter(|m| user_id.is_none_or(|u| m.scope.user_id == u))
            // A soft-deleted memory is gone for clients, but a hard delete still erases it.
            .filter(|m| hard || m.status != MemoryStatus::Deleted)
            .collect();
        let found: HashSet<&str> = found_memories.iter().map(|m| m.id.as_str()).collect();
        if let Some(missing) = unique.iter().find(|id| !found.contains(id.as_str())) {
            return Err(Error::not_found(
                format!("memory {missing}"),
                NotFoundKind::MemoryToDelete,
            ));
        }
        // A hard delete's batch holds only ids; the vectors' scopes come from here.
        let stale = found_memories
            .iter()
            .map(|m| VectorOp::Delete {
                scope: m.scope.clone(),
                id: m.id.clone(),
            })
            .collect();
        let batch = if hard {
            WriteBatch {
                delete_memories: unique.to_vec(),
                ..Default::default()
            }
        } else {
            let now = now_millis();
            let mut batch = WriteBatch {
                expect: Expect::read(project_id, &found_memories),
                ..Default::default()
            };
            for mut m in found_memories {
                batch.history.push(MemoryChange {
                    memory_id: m.id.clone(),
                    scope: m.scope.clone(),
                    time: now,
                    kind: ChangeKind::Deleted,
                    related_id: None,
                    before: None,
                    note: format!("was {}", m.status.as_str()),
                });
                m.status = MemoryStatus::Deleted;
                m.update_time = now;
                batch.upsert_memories.push(m);
            }
            batch
        };
        guard.write(batch, stale).await?;
        Ok(unique.len())
    }

    /// Deletes every memory that matches `filter` (soft or hard, as [`Self::delete`]): of
    /// one user, or with `None` of every user of the project (the SDK's
    /// `delete_memory(filter=...)`), one user at a time. Returns how many; none matching is
    /// not an error.
    pub async fn delete_matching(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        filter: &Filter,
        hard: bool,
    ) -> Result<usize> {
        let Some(user_id) = user_id else {
            let mut users = Vec::new();
            loop {
                let page = self
                    .store
                    .list_users(project_id, MAX_DELETE_IDS, users.len())
                    .await?;
                let n = page.items.len();
                // Users' and agents' memories; a knowledge base's chunks are documents,
                // deleted through their files.
                users.extend(
                    page.items
                        .into_iter()
                        .map(|u| u.user_id)
                        .filter(|u| subject_kb(u).is_none()),
                );
                if n < MAX_DELETE_IDS {
                    break;
                }
            }
            let mut done = 0;
            for u in &users {
                done += Box::pin(self.delete_matching(project_id, Some(u), filter, hard)).await?;
            }
            return Ok(done);
        };
        self.check_user(user_id)?;
        let scope = Scope::new(project_id, user_id);
        let mut ids = Vec::new();
        loop {
            let page = self
                .store
                .list_memories(
                    &scope,
                    &ListQuery {
                        filter: Some(filter.clone()),
                        limit: MAX_DELETE_IDS,
                        offset: ids.len(),
                        ..Default::default()
                    },
                )
                .await?;
            let n = page.items.len();
            ids.extend(page.items.into_iter().map(|m| m.id));
            if n < MAX_DELETE_IDS {
                break;
            }
        }
        let mut done = 0;
        for chunk in ids.chunks(MAX_DELETE_IDS) {
            done += self.delete(project_id, Some(user_id), chunk, hard).await?;
        }
        Ok(done)
    }

    /// Edits a memory (`update/memory`): its text, headline, tags or status. The change is
    /// recorded in its history with the text before; a new text gets a new vector.
    pub async fn update(&self, project_id: &str, input: UpdateInput) -> Result<Memory> {
        fresh_reads(|| self.update_once(project_id, input.clone())).await
    }

    /// One attempt at [`Self::update`].
    async fn update_once(&self, project_id: &str, input: UpdateInput) -> Result<Memory> {
        // The memory is read under the write lock and written back under it, and the store
        // writes it only if it is still as read: a delete that lands first, on this server
        // or another, makes this a not-found, never a resurrection (issue 13).
        let guard = self.lock_writes().await;
        let mut m = self
            .get(project_id, input.user_id.as_deref(), &input.memory_id)
            .await?;
        let expect = Expect::read(project_id, std::slice::from_ref(&m));
        let mut changed = Vec::new();
        let before = m.value.clone();
        if let Some(v) = input.value {
            let v = v.trim().to_string();
            if v.is_empty() {
                return Err(Error::required("memory_value"));
            }
            if v.chars().count() > self.config.limits.max_add_chars {
                return Err(Error::input(
                    "memory_value",
                    "memory_value is too long",
                    InputErrorKind::TooLarge,
                ));
            }
            if v != m.value {
                m.value = v;
                changed.push("value");
            }
        }
        if let Some(k) = input.key {
            if k.chars().count() > MAX_KEY_CHARS {
                return Err(Error::invalid(
                    "memory_key",
                    format!("memory_key holds at most {MAX_KEY_CHARS} characters"),
                ));
            }
            if k != m.key {
                m.key = k;
                changed.push("key");
            }
        }
        if let Some(tags) = input.tags {
            if tags.len() > self.config.limits.max_tags {
                return Err(Error::invalid("tags", "too many tags"));
            }
            if tags != m.tags {
                m.tags = tags;
                changed.push("tags");
            }
        }
        if let Some(status) = input.status {
            if status == MemoryStatus::Deleted {
                return Err(Error::invalid(
                    "status",
                    "status must be activated or archived; use delete/memory to delete",
                ));
            }
            if status != m.status {
                m.status = status;
                changed.push("status");
            }
        }
        if changed.is_empty() {
            return Ok(m);
        }
        let now = now_millis();
        m.update_time = now;
        let history = vec![MemoryChange {
            memory_id: m.id.clone(),
            scope: m.scope.clone(),
            time: now,
            kind: ChangeKind::Updated,
            related_id: None,
            before: changed.contains(&"value").then_some(before),
            note: input
                .note
                .unwrap_or_else(|| format!("edited: {}", changed.join(", "))),
        }];
        // The old vector described the old text; the background embedder makes a new one.
        let stale = if changed.contains(&"value") {
            vec![VectorOp::Delete {
                scope: m.scope.clone(),
                id: m.id.clone(),
            }]
        } else {
            vec![]
        };
        let batch = WriteBatch {
            upsert_memories: vec![m.clone()],
            history,
            expect,
            ..Default::default()
        };
        guard.write(batch, stale).await?;
        Ok(m)
    }

    /// Natural-language feedback on what memos remembers ("that's wrong, I'm vegetarian
    /// now"): kept in the chat log as the user's message, then its facts go through the same
    /// merge and supersede logic as any add, with the correction words stripped.
    pub async fn feedback(&self, project_id: &str, input: FeedbackInput) -> Result<AddOutcome> {
        let content = strip_correction(&input.content);
        if content.trim().is_empty() {
            return Err(Error::required("feedback_content"));
        }
        self.add(
            project_id,
            AddInput {
                user_id: input.user_id,
                conversation_id: input.conversation_id,
                messages: vec![NewMessage {
                    role: Role::User,
                    content: content.to_string(),
                    chat_time: input.time,
                    name: None,
                    message_id: None,
                    raw: None,
                }],
                tags: vec!["feedback".into()],
                info: Map::new(),
                agent_id: input.agent_id,
                app_id: input.app_id,
                async_mode: false,
                knowledgebase_ids: input.knowledgebase_ids,
                public: input.public,
            },
        )
        .await
    }

    /// Deletes everything of a user: memories, messages and tasks.
    pub async fn delete_user(&self, project_id: &str, user_id: &str) -> Result<usize> {
        self.check_user(user_id)?;
        let scope = Scope::new(project_id, user_id);
        if !self.store.user_exists(&scope).await? {
            return Err(Error::not_found(
                format!("user {user_id}"),
                NotFoundKind::UserToDelete,
            ));
        }
        let (n, wait) = {
            let _order = self.write_lock.lock().await;
            let (n, revision) = self.store.delete_user(&scope).await?;
            let wait = self.retrieval.apply(
                vec![IndexOp::DeleteScope(scope.clone())],
                &[VectorOp::DropScope(scope)],
                revision,
            )?;
            (n, wait)
        };
        settle(indexed(wait).await);
        Ok(n)
    }
}

/// Correction words at the start of feedback, which are not part of the fact.
pub(super) static CORRECTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^\s*(?:(?:(?:no|nope|wrong|not true|that's wrong|that is wrong|that's not (?:right|true)|that is not (?:right|true)|actually|correction)\b|不对|错了|不是的|不是这样|其实|纠正一下)[\s,，.。!！:：;；]*)+",
    )
    .expect("valid regex")
});

pub(super) fn strip_correction(text: &str) -> &str {
    CORRECTION.find(text).map_or(text, |m| &text[m.end()..])
}
