//! [`MemoryService`]: the one facade the HTTP server and the CLI call. It validates input,
//! runs ingestion, keeps the store and the indexes in step, and answers searches.
//!
//! Every write goes through [`MemoryService::commit`]: the store write and the index
//! enqueue happen under one lock, so the index sees store revisions in order and its
//! recorded revision is always a prefix of the store's history.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Weak};

use serde_json::{Map, Value};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::config::Config;
use crate::error::{Error, InputErrorKind, NotFoundKind, Result};
use crate::filter::Filter;
use crate::ingest::{AddContext, fast};
use crate::model::*;
use crate::search::bm25::{Bm25Index, IndexOp};
use crate::search::fusion;
use crate::store::{EmbeddedStore, InMemoryStore, ListQuery, MemoryStore, Page, WriteBatch};

/// A message as a client sends it, already typed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Who said it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// When it was said; `None` means now.
    pub chat_time: Option<Millis>,
    /// The speaker's name.
    pub name: Option<String>,
    /// The client's id for the message.
    pub message_id: Option<String>,
}

/// An add request.
#[derive(Debug, Clone, PartialEq)]
pub struct AddInput {
    /// The end user.
    pub user_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The messages, in chat order.
    pub messages: Vec<NewMessage>,
    /// Tags for every memory made.
    pub tags: Vec<String>,
    /// Metadata for every memory made.
    pub info: Map<String, Value>,
    /// The agent that sends them.
    pub agent_id: Option<String>,
    /// The app that sends them.
    pub app_id: Option<String>,
    /// Return at once with a task id (true) or when the memories are searchable (false).
    pub async_mode: bool,
}

/// What an add returns.
#[derive(Debug, Clone, PartialEq)]
pub struct AddOutcome {
    /// The task that tracks it.
    pub task_id: String,
    /// `Running` for async adds, `Completed` for sync ones.
    pub status: TaskStatus,
    /// Ids of the memories made (sync adds only; async ones report them in the task).
    pub memory_ids: Vec<String>,
}

/// A search request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchInput {
    /// The end user.
    pub user_id: String,
    /// What to look for: usually the user's latest message.
    pub query: String,
    /// The current conversation; its memories are boosted, never exclusively returned.
    pub conversation_id: Option<String>,
    /// How many results; `None` means the configured default.
    pub limit: Option<usize>,
    /// Restricts the candidates before ranking.
    pub filter: Option<Filter>,
    /// Search as of this moment: later memories are invisible.
    pub query_time: Option<Millis>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The memory.
    pub memory: Memory,
    /// How it is presented: `WorkingMemory` for the newest items of the current
    /// conversation, the stored type otherwise.
    pub memory_type: MemoryType,
    /// Calibrated relevance in [0, 1], boost included.
    pub relativity: f32,
}

/// A page request for a user's memories.
#[derive(Debug, Clone, PartialEq)]
pub struct ListInput {
    /// The end user.
    pub user_id: String,
    /// 1-based page number.
    pub page: usize,
    /// Page size.
    pub size: usize,
    /// Optional filter.
    pub filter: Option<Filter>,
}

/// Most results a list page may hold.
pub const MAX_PAGE_SIZE: usize = 50;
/// Most messages `get/message` returns.
pub const MAX_MESSAGE_LIMIT: usize = 50;
/// Most ids one delete may name.
pub const MAX_DELETE_IDS: usize = 1_000;

/// The memory service.
pub struct MemoryService {
    store: Arc<dyn MemoryStore>,
    index: Bm25Index,
    config: Config,
    write_lock: Mutex<()>,
    tasks: mpsc::UnboundedSender<Task>,
}

impl std::fmt::Debug for MemoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryService")
            .field("index", &self.index.path())
            .finish()
    }
}

impl MemoryService {
    /// Opens the backend the configuration names, brings the index up to date with the
    /// store and resumes unfinished add tasks. Must run inside a tokio runtime.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        config.validate()?;
        let (store, index): (Arc<dyn MemoryStore>, Bm25Index) = match config.store.backend.as_str()
        {
            "memory" => (Arc::new(InMemoryStore::new()), Bm25Index::open(None)?),
            _ => {
                let dir = &config.store.data_dir;
                (
                    Arc::new(EmbeddedStore::open(dir)?),
                    Bm25Index::open(Some(&dir.join("index")))?,
                )
            }
        };
        Self::start(store, index, config).await
    }

    /// Builds a service over given parts (tests, other backends).
    pub async fn start(
        store: Arc<dyn MemoryStore>,
        index: Bm25Index,
        config: Config,
    ) -> Result<Arc<Self>> {
        index.sync_with(store.as_ref()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let svc = Arc::new(Self {
            store,
            index,
            config,
            write_lock: Mutex::new(()),
            tasks: tx,
        });
        tokio::spawn(task_worker(Arc::downgrade(&svc), rx));
        let pending = svc.store.running_tasks().await?;
        if !pending.is_empty() {
            tracing::info!(
                tasks = pending.len(),
                "resuming add tasks interrupted by the last shutdown"
            );
        }
        for t in pending {
            let _ = svc.tasks.send(t);
        }
        Ok(svc)
    }

    /// The store underneath, for key management.
    pub fn store(&self) -> &dyn MemoryStore {
        self.store.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Writes a batch and queues the matching index changes in revision order. The receiver
    /// reports when the changes are searchable.
    async fn commit(
        &self,
        batch: WriteBatch,
        ops: Vec<IndexOp>,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let _order = self.write_lock.lock().await;
        let revision = self.store.write(batch).await?;
        self.index.enqueue(ops, revision)
    }

    fn check_id(&self, field: &str, value: &str, kind: InputErrorKind) -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::required(field));
        }
        let max = self.config.limits.max_id_chars;
        if value.chars().count() > max {
            return Err(Error::input(
                field,
                format!("{field} cannot exceed {max} characters"),
                kind,
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("{field} cannot contain control characters"),
            ));
        }
        Ok(())
    }

    fn check_user(&self, user_id: &str) -> Result<()> {
        self.check_id("user_id", user_id, InputErrorKind::UserIdTooLong)
    }

    fn check_optional_id(&self, field: &str, v: &Option<String>) -> Result<()> {
        match v {
            Some(v) => self.check_id(field, v, InputErrorKind::Invalid),
            None => Ok(()),
        }
    }

    /// Stores messages and turns them into memories.
    pub async fn add(&self, project_id: &str, input: AddInput) -> Result<AddOutcome> {
        self.check_user(&input.user_id)?;
        self.check_id(
            "conversation_id",
            &input.conversation_id,
            InputErrorKind::ConversationIdTooLong,
        )?;
        self.check_optional_id("agent_id", &input.agent_id)?;
        self.check_optional_id("app_id", &input.app_id)?;
        let limits = &self.config.limits;
        if input.messages.is_empty() {
            return Err(Error::input(
                "messages",
                "messages must hold at least one message",
                InputErrorKind::Empty,
            ));
        }
        if input.messages.len() > limits.max_messages {
            return Err(Error::invalid(
                "messages",
                format!("at most {} messages per add", limits.max_messages),
            ));
        }
        if input.tags.len() > limits.max_tags {
            return Err(Error::invalid(
                "tags",
                format!("at most {} tags per add", limits.max_tags),
            ));
        }
        for (i, t) in input.tags.iter().enumerate() {
            self.check_id(&format!("tags[{i}]"), t, InputErrorKind::Invalid)?;
        }
        let mut total = 0usize;
        for (i, m) in input.messages.iter().enumerate() {
            if m.content.trim().is_empty() {
                return Err(Error::required(format!("messages[{i}].content")));
            }
            total += m.content.chars().count();
            self.check_optional_id(&format!("messages[{i}].message_id"), &m.message_id)?;
            self.check_optional_id(&format!("messages[{i}].name"), &m.name)?;
        }
        if total > limits.max_add_chars {
            return Err(Error::input(
                "messages",
                format!(
                    "messages hold {total} characters; one add may carry at most {}",
                    limits.max_add_chars
                ),
                InputErrorKind::TooLarge,
            ));
        }

        let scope = Scope::new(project_id, input.user_id.clone());
        let now = now_millis();
        let task_id = uuid::Uuid::new_v4().to_string();
        let messages: Vec<Message> = input
            .messages
            .iter()
            .map(|m| {
                let id = uuid::Uuid::new_v4().to_string();
                Message {
                    message_id: m.message_id.clone().unwrap_or_else(|| id.clone()),
                    id,
                    scope: scope.clone(),
                    conversation_id: input.conversation_id.clone(),
                    role: m.role,
                    name: m.name.clone(),
                    content: m.content.clone(),
                    chat_time: m.chat_time.unwrap_or(now),
                    create_time: now,
                    task_id: task_id.clone(),
                }
            })
            .collect();
        let ctx = AddContext {
            scope: scope.clone(),
            conversation_id: input.conversation_id.clone(),
            tags: input.tags,
            info: input.info,
            agent_id: input.agent_id,
            app_id: input.app_id,
        };
        let mut task = Task {
            id: task_id.clone(),
            scope: scope.clone(),
            status: TaskStatus::Running,
            payload: serde_json::to_value(&ctx).expect("context serialises"),
            memory_ids: vec![],
            error: None,
            create_time: now,
            update_time: now,
        };

        if input.async_mode {
            // Durable first: once the client holds the task id, a crash cannot lose the
            // messages, and a restart finishes the task.
            let wait = self
                .commit(
                    WriteBatch {
                        messages,
                        task: Some(task.clone()),
                        ..Default::default()
                    },
                    vec![],
                )
                .await?;
            drop(wait);
            self.tasks
                .send(task)
                .map_err(|_| Error::Unavailable("task worker stopped".into()))?;
            return Ok(AddOutcome {
                task_id,
                status: TaskStatus::Running,
                memory_ids: vec![],
            });
        }

        let previous = self
            .previous_message(&scope, &input.conversation_id, &messages)
            .await?;
        let memories = fast::extract(&ctx, &messages, previous.as_ref(), now);
        task.status = TaskStatus::Completed;
        task.memory_ids = memories.iter().map(|m| m.id.clone()).collect();
        let ops = memories
            .iter()
            .map(|m| IndexOp::Upsert(Box::new(m.clone())))
            .collect();
        let wait = self
            .commit(
                WriteBatch {
                    messages,
                    upsert_memories: memories,
                    task: Some(task.clone()),
                    ..Default::default()
                },
                ops,
            )
            .await?;
        wait.await
            .map_err(|_| Error::Unavailable("index writer stopped".into()))??;
        Ok(AddOutcome {
            task_id,
            status: TaskStatus::Completed,
            memory_ids: task.memory_ids,
        })
    }

    /// The conversation's last turn before `messages`, for short-reply context.
    async fn previous_message(
        &self,
        scope: &Scope,
        conversation_id: &str,
        messages: &[Message],
    ) -> Result<Option<Message>> {
        let Some(first) = messages.first() else {
            return Ok(None);
        };
        let recent = self
            .store
            .list_messages(scope, conversation_id, messages.len() + 4)
            .await?;
        Ok(recent
            .into_iter()
            .filter(|m| m.task_id != first.task_id && m.chat_time <= first.chat_time)
            .rfind(|m| matches!(m.role, Role::User | Role::Assistant)))
    }

    /// Finishes an async add. Two writes, so that `completed` always means searchable:
    /// first the memories, with their ids recorded on the still-running task; then, once the
    /// index has them, the completion. A restart between the two finds the ids on the task
    /// and completes it without extracting again, so no memory is made twice.
    async fn process_task(&self, mut task: Task) {
        let result: Result<()> = async {
            if task.memory_ids.is_empty() {
                let ctx: AddContext = serde_json::from_value(task.payload.clone())
                    .map_err(|e| Error::Unavailable(format!("unreadable task payload: {e}")))?;
                let messages = self.store.task_messages(&task.id).await?;
                let previous = self
                    .previous_message(&task.scope, &ctx.conversation_id, &messages)
                    .await?;
                let now = now_millis();
                let memories = fast::extract(&ctx, &messages, previous.as_ref(), now);
                task.memory_ids = memories.iter().map(|m| m.id.clone()).collect();
                task.update_time = now;
                let ops = memories
                    .iter()
                    .map(|m| IndexOp::Upsert(Box::new(m.clone())))
                    .collect();
                let batch = WriteBatch {
                    upsert_memories: memories,
                    task: Some(task.clone()),
                    ..Default::default()
                };
                self.commit(batch, ops)
                    .await?
                    .await
                    .map_err(|_| Error::Unavailable("index writer stopped".into()))??;
            }
            task.status = TaskStatus::Completed;
            task.update_time = now_millis();
            drop(
                self.commit(
                    WriteBatch {
                        task: Some(task.clone()),
                        ..Default::default()
                    },
                    vec![],
                )
                .await?,
            );
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(task = %task.id, error = %e, "add task failed");
            task.status = TaskStatus::Failed;
            task.error =
                Some("memory extraction failed; the messages are kept in the chat log".into());
            task.update_time = now_millis();
            if let Err(e) = self
                .commit(
                    WriteBatch {
                        task: Some(task),
                        ..Default::default()
                    },
                    vec![],
                )
                .await
            {
                tracing::error!(error = %e, "could not record the task failure");
            }
        }
    }

    /// A task's state.
    pub async fn task(&self, project_id: &str, task_id: &str) -> Result<Task> {
        if task_id.trim().is_empty() {
            return Err(Error::required("task_id"));
        }
        self.store
            .get_task(project_id, task_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("task {task_id}"), NotFoundKind::Task))
    }

    /// The memories most relevant to a query, best first.
    pub async fn search(&self, project_id: &str, input: SearchInput) -> Result<Vec<SearchHit>> {
        self.check_user(&input.user_id)?;
        if let Some(c) = &input.conversation_id {
            self.check_id("conversation_id", c, InputErrorKind::ConversationIdTooLong)?;
        }
        if input.query.trim().is_empty() {
            return Err(Error::required("query"));
        }
        let qlen = input.query.chars().count();
        if qlen > self.config.limits.max_query_chars {
            return Err(Error::input(
                "query",
                format!(
                    "query holds {qlen} characters; at most {} are allowed",
                    self.config.limits.max_query_chars
                ),
                InputErrorKind::TooLarge,
            ));
        }
        let s = &self.config.search;
        let limit = input.limit.unwrap_or(s.default_limit);
        if limit == 0 || limit > s.max_limit {
            return Err(Error::invalid(
                "memory_limit_number",
                format!("memory_limit_number must be between 1 and {}", s.max_limit),
            ));
        }
        let scope = Scope::new(project_id, input.user_id.clone());
        // Retrieve a deeper pool than asked so the conversation boost can lift items into it.
        let pool = (limit * 4).max(40);
        let bm25 = self.index.search(
            &scope,
            &input.query,
            input.filter.as_ref(),
            input.query_time,
            pool,
        )?;
        let fused = fusion::fuse(&[(1.0, bm25)]);
        let ids: Vec<String> = fused.iter().map(|c| c.id.clone()).collect();
        let mut by_id: HashMap<String, Memory> = self
            .store
            .get_memories(project_id, &ids)
            .await?
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        let mut ranked: Vec<(f32, Memory)> = fused
            .into_iter()
            .filter_map(|c| {
                // The index is derived data: trust only what the store confirms for this user.
                let m = by_id.remove(&c.id).filter(|m| m.scope == scope)?;
                let boost = match &input.conversation_id {
                    Some(conv) if *conv == m.conversation_id => s.conversation_boost,
                    _ => 1.0,
                };
                Some((c.relativity * boost, m))
            })
            .collect();
        // Stable: equal keys (say, several clamped at 1.0) keep the retrievers' order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.truncate(limit);
        let working = self
            .working_set(&scope, input.conversation_id.as_deref())
            .await?;
        Ok(ranked
            .into_iter()
            .map(|(score, m)| SearchHit {
                memory_type: if working.contains(&m.id) {
                    MemoryType::WorkingMemory
                } else {
                    m.memory_type
                },
                relativity: score.clamp(0.0, 1.0),
                memory: m,
            })
            .collect())
    }

    /// Ids of the newest memories of a conversation: what shows as `WorkingMemory`.
    async fn working_set(
        &self,
        scope: &Scope,
        conversation_id: Option<&str>,
    ) -> Result<HashSet<String>> {
        let Some(conv) = conversation_id else {
            return Ok(HashSet::new());
        };
        let n = self.config.search.working_memory_size;
        if n == 0 {
            return Ok(HashSet::new());
        }
        let q = ListQuery {
            conversation_id: Some(conv.to_string()),
            limit: n,
            ..Default::default()
        };
        Ok(self
            .store
            .list_memories(scope, &q)
            .await?
            .items
            .into_iter()
            .map(|m| m.id)
            .collect())
    }

    /// A page of a user's memories, newest first.
    pub async fn list(&self, project_id: &str, input: ListInput) -> Result<Page<Memory>> {
        self.check_user(&input.user_id)?;
        if input.page == 0 {
            return Err(Error::invalid("page", "page starts at 1"));
        }
        if input.size == 0 || input.size > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "size",
                format!("size must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let q = ListQuery {
            filter: input.filter,
            conversation_id: None,
            offset: (input.page - 1).saturating_mul(input.size),
            limit: input.size,
        };
        self.store
            .list_memories(&Scope::new(project_id, input.user_id), &q)
            .await
    }

    /// One memory by id, anywhere in the project (or only the user's, when named).
    pub async fn get(&self, project_id: &str, user_id: Option<&str>, id: &str) -> Result<Memory> {
        if id.trim().is_empty() {
            return Err(Error::required("memory_id"));
        }
        self.store
            .get_memories(project_id, &[id.to_string()])
            .await?
            .into_iter()
            .find(|m| user_id.is_none_or(|u| m.scope.user_id == u))
            .ok_or_else(|| Error::not_found(format!("memory {id}"), NotFoundKind::Record))
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

    /// Deletes memories by id: all of them or, if any is unknown, none.
    pub async fn delete(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        ids: &[String],
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
        let found = self.store.get_memories(project_id, &unique).await?;
        let found: HashSet<&str> = found
            .iter()
            .filter(|m| user_id.is_none_or(|u| m.scope.user_id == u))
            .map(|m| m.id.as_str())
            .collect();
        if let Some(missing) = unique.iter().find(|id| !found.contains(id.as_str())) {
            return Err(Error::not_found(
                format!("memory {missing}"),
                NotFoundKind::MemoryToDelete,
            ));
        }
        let ops = unique
            .iter()
            .map(|id| IndexOp::Delete(id.clone()))
            .collect();
        let wait = self
            .commit(
                WriteBatch {
                    delete_memories: unique.clone(),
                    ..Default::default()
                },
                ops,
            )
            .await?;
        wait.await
            .map_err(|_| Error::Unavailable("index writer stopped".into()))??;
        Ok(unique.len())
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
        let wait = {
            let _order = self.write_lock.lock().await;
            let (n, revision) = self.store.delete_user(&scope).await?;
            (
                n,
                self.index
                    .enqueue(vec![IndexOp::DeleteScope(scope)], revision)?,
            )
        };
        wait.1
            .await
            .map_err(|_| Error::Unavailable("index writer stopped".into()))??;
        Ok(wait.0)
    }

    /// Opens a data directory's service for a one-off command (CLI).
    pub async fn open_dir(dir: &Path) -> Result<Arc<Self>> {
        let mut config = Config::default();
        config.store.data_dir = dir.to_path_buf();
        Self::open(config).await
    }
}

async fn task_worker(svc: Weak<MemoryService>, mut rx: mpsc::UnboundedReceiver<Task>) {
    while let Some(task) = rx.recv().await {
        let Some(svc) = svc.upgrade() else { break };
        svc.process_task(task).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::tests_support::{memory, message};

    async fn wait_completed(svc: &MemoryService, task_id: &str) -> Task {
        for _ in 0..200 {
            let t = svc.task("p", task_id).await.unwrap();
            if t.status != TaskStatus::Running {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task {task_id} never finished");
    }

    fn running_task(scope: &Scope, memory_ids: Vec<String>) -> Task {
        let ctx = AddContext {
            scope: scope.clone(),
            conversation_id: "c".into(),
            ..Default::default()
        };
        Task {
            id: "t".into(),
            scope: scope.clone(),
            status: TaskStatus::Running,
            payload: serde_json::to_value(ctx).unwrap(),
            memory_ids,
            error: None,
            create_time: 1,
            update_time: 1,
        }
    }

    #[tokio::test]
    async fn a_restart_finishes_accepted_tasks() {
        // The state a crash leaves right after an async add was acknowledged.
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let scope = Scope::new("p", "u");
        let batch = WriteBatch {
            messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
            task: Some(running_task(&scope, vec![])),
            ..Default::default()
        };
        store.write(batch).await.unwrap();
        let svc = MemoryService::start(store, Bm25Index::open(None).unwrap(), Config::default())
            .await
            .unwrap();
        let t = wait_completed(&svc, "t").await;
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.memory_ids.len(), 1);
        let hits = svc
            .search(
                "p",
                SearchInput {
                    user_id: "u".into(),
                    query: "bees".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(hits[0].memory.id, t.memory_ids[0]);
    }

    #[tokio::test]
    async fn a_restart_between_the_two_task_writes_makes_nothing_twice() {
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let scope = Scope::new("p", "u");
        let m = memory("u", "c", "I keep bees on my roof.");
        let batch = WriteBatch {
            messages: vec![message(&scope, "c", "I keep bees on my roof.", 5)],
            upsert_memories: vec![m.clone()],
            task: Some(running_task(&scope, vec![m.id.clone()])),
            ..Default::default()
        };
        store.write(batch).await.unwrap();
        let svc = MemoryService::start(
            store.clone(),
            Bm25Index::open(None).unwrap(),
            Config::default(),
        )
        .await
        .unwrap();
        let t = wait_completed(&svc, "t").await;
        assert_eq!(t.memory_ids, vec![m.id.clone()]);
        let all = store
            .list_memories(
                &scope,
                &ListQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(all.total, 1, "the extraction did not run again");
        let hits = svc
            .search(
                "p",
                SearchInput {
                    user_id: "u".into(),
                    query: "bees".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 1, "the startup sync indexed the memory");
    }

    #[tokio::test]
    async fn a_stale_index_is_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.store.data_dir = dir.path().to_path_buf();
        {
            let svc = MemoryService::open(cfg.clone()).await.unwrap();
            let input = AddInput {
                user_id: "u".into(),
                conversation_id: "c".into(),
                messages: vec![NewMessage {
                    role: Role::User,
                    content: "My cat is called Miso.".into(),
                    chat_time: None,
                    name: None,
                    message_id: None,
                }],
                tags: vec![],
                info: Map::new(),
                agent_id: None,
                app_id: None,
                async_mode: false,
            };
            svc.add("p", input).await.unwrap();
        }
        // Lose the index entirely, as if the crash hit before its first commit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::remove_dir_all(dir.path().join("index")).unwrap();
        let svc = MemoryService::open(cfg).await.unwrap();
        let hits = svc
            .search(
                "p",
                SearchInput {
                    user_id: "u".into(),
                    query: "cat Miso".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
    }
}
