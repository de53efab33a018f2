//! Reads: pages of a user's memories, one memory, its history, and the chat log with its
//! conversations.

use crate::error::{Error, InputErrorKind, NotFoundKind, Result};
use crate::filter::{Condition, Filter};
use crate::model::*;
use crate::store::{ListQuery, Page};

use super::MemoryService;
use super::input::{ListInput, MAX_MESSAGE_LIMIT, MAX_PAGE_SIZE};

/// Most preference items read through the local index; a user with more is listed by the
/// store, newest first.
const INDEXED_PREFERENCES: usize = 2_000;

/// Highest page number: beyond it an offset stops fitting the stores' 64-bit integers.
const MAX_PAGE: usize = 100_000_000;

impl MemoryService {
    /// A page of a user's memories, newest first.
    pub async fn list(&self, project_id: &str, input: ListInput) -> Result<Page<Memory>> {
        self.check_user(&input.user_id)?;
        check_page(input.page, input.size)?;
        // Tool trajectories are listed on their own (`tool_memories`) unless the filter
        // names their type.
        let tools =
            super::search::names_type(input.filter.as_ref(), MemoryType::ToolTrajectoryMemory);
        let q = ListQuery {
            filter: input.filter,
            conversation_id: None,
            offset: (input.page - 1).saturating_mul(input.size),
            limit: input.size,
            exclude_type: (!tools).then_some(MemoryType::ToolTrajectoryMemory),
            statuses: input.statuses,
        };
        self.store
            .list_memories(&Scope::new(project_id, input.user_id), &q)
            .await
    }

    /// A page of the project's subjects (users, and agents with memory of their own), most
    /// recently changed first, with how many memories each holds.
    pub async fn users(
        &self,
        project_id: &str,
        page: usize,
        size: usize,
    ) -> Result<Page<UserSummary>> {
        check_page(page, size)?;
        self.store
            .list_users(project_id, size, (page - 1).saturating_mul(size))
            .await
    }

    /// The subject's newest tool trajectories, at most `limit`: what `get/memory` lists in
    /// `tool_memory_detail_list`.
    pub async fn tool_memories(
        &self,
        project_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Memory>> {
        self.check_user(user_id)?;
        let q = ListQuery {
            filter: Some(Filter::only(Condition::MemoryType(
                MemoryType::ToolTrajectoryMemory,
            ))),
            limit: limit.min(MAX_PAGE_SIZE),
            ..Default::default()
        };
        Ok(self
            .store
            .list_memories(&Scope::new(project_id, user_id), &q)
            .await?
            .items)
    }

    /// The user's current preferences (profile items tagged as such), newest first, at
    /// most `limit`: what `get/memory` lists beside a page.
    pub async fn preferences(
        &self,
        project_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Memory>> {
        self.preferences_as_of(project_id, user_id, limit, std::time::Instant::now(), &[])
            .await
    }

    /// [`Self::preferences`] with every write acknowledged before `since` (a search's
    /// start, whose retrievers already caught up to it). Memories in `read` (read since
    /// `since`, such as the preference channel's hits) are not read again.
    pub(super) async fn preferences_as_of(
        &self,
        project_id: &str,
        user_id: &str,
        limit: usize,
        since: std::time::Instant,
        read: &[&Memory],
    ) -> Result<Vec<Memory>> {
        self.check_user(user_id)?;
        let only = Filter::only(Condition::TagContains(
            crate::ingest::fast::PREFERENCE_TAG.to_lowercase(),
        ));
        let scope = Scope::new(project_id, user_id);
        // The local index (or PostgreSQL's copy of the user) finds them by tag at once;
        // the store's list scans the user's memories for the tag (half a second at 100k
        // memories in SQLite; on PostgreSQL a count and a list, two statements a search).
        if let Some(ids) = self
            .retrieval
            .tagged_ids(&scope, &only, INDEXED_PREFERENCES, since)
            .await?
        {
            let read: std::collections::HashMap<&str, &Memory> =
                read.iter().map(|m| (m.id.as_str(), *m)).collect();
            let unread: Vec<String> = ids
                .iter()
                .filter(|id| !read.contains_key(id.as_str()))
                .cloned()
                .collect();
            let mut found: Vec<Memory> = self
                .store
                .get_memories(project_id, &unread)
                .await?
                .into_iter()
                .chain(
                    ids.iter()
                        .filter_map(|id| read.get(id.as_str()).map(|m| (*m).clone())),
                )
                .filter(|m| m.scope == scope && m.status == MemoryStatus::Activated)
                .collect();
            found.sort_by(|a, b| {
                b.create_time
                    .cmp(&a.create_time)
                    .then_with(|| b.id.cmp(&a.id))
            });
            found.truncate(limit);
            return Ok(found);
        }
        let q = ListQuery {
            filter: Some(only),
            limit,
            ..Default::default()
        };
        let page = self.store.list_memories(&scope, &q).await?;
        Ok(page
            .items
            .into_iter()
            .filter(|m| m.status == MemoryStatus::Activated)
            .collect())
    }

    /// One memory by id, anywhere in the project (or only the user's, when named).
    pub async fn get(&self, project_id: &str, user_id: Option<&str>, id: &str) -> Result<Memory> {
        if id.trim().is_empty() {
            return Err(Error::required("memory_id"));
        }
        self.get_any(project_id, user_id, id)
            .await?
            .filter(|m| m.status != MemoryStatus::Deleted)
            .ok_or_else(|| Error::not_found(format!("memory {id}"), NotFoundKind::Record))
    }

    /// A memory whatever its status, soft-deleted ones included.
    pub(super) async fn get_any(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        id: &str,
    ) -> Result<Option<Memory>> {
        if id.trim().is_empty() {
            return Err(Error::required("memory_id"));
        }
        Ok(self
            .store
            .get_memories(project_id, &[id.to_string()])
            .await?
            .into_iter()
            .find(|m| user_id.is_none_or(|u| m.scope.user_id == u)))
    }

    /// A memory and its history, oldest change first.
    pub async fn history(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        id: &str,
    ) -> Result<(Memory, Vec<MemoryChange>)> {
        // A soft-deleted memory's history stays readable: it is the audit trail.
        let m = self
            .get_any(project_id, user_id, id)
            .await?
            .ok_or_else(|| Error::not_found(format!("memory {id}"), NotFoundKind::Record))?;
        let h = self.store.history(project_id, id).await?;
        Ok((m, h))
    }

    /// A page of a subject's conversations, the one with the latest message first.
    pub async fn conversations(
        &self,
        project_id: &str,
        user_id: &str,
        page: usize,
        size: usize,
    ) -> Result<Page<ConversationSummary>> {
        self.check_user(user_id)?;
        check_page(page, size)?;
        self.store
            .list_conversations(
                &Scope::new(project_id, user_id),
                size,
                (page - 1).saturating_mul(size),
            )
            .await
    }

    /// The newest `limit` messages of a conversation, in chat order.
    pub async fn messages(
        &self,
        project_id: &str,
        user_id: &str,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.check_user(user_id)?;
        self.check_id(
            "conversation_id",
            conversation_id,
            InputErrorKind::ConversationIdTooLong,
        )?;
        if limit == 0 || limit > MAX_MESSAGE_LIMIT {
            return Err(Error::invalid(
                "message_limit_number",
                format!("message_limit_number must be between 1 and {MAX_MESSAGE_LIMIT}"),
            ));
        }
        self.store
            .list_messages(&Scope::new(project_id, user_id), conversation_id, limit)
            .await
    }
}

/// A page number and size within bounds.
fn check_page(page: usize, size: usize) -> Result<()> {
    if page == 0 || page > MAX_PAGE {
        return Err(Error::invalid(
            "page",
            format!("page must be between 1 and {MAX_PAGE}"),
        ));
    }
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            "size",
            format!("size must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(())
}
