//! Durable storage: the [`MemoryStore`] trait and its backends.
//!
//! The store is the source of truth. Every index (BM25, the in-RAM vectors) is derived from
//! it and can be rebuilt from [`MemoryStore::scan_memories`]. Writes go through
//! [`MemoryStore::write`] as one atomic [`WriteBatch`], so a crash never leaves messages
//! without their memories or a task marked done without its results; each write bumps a
//! revision number that indexes record to know whether they are current.
//!
//! Backends: [`EmbeddedStore`] (SQLite, the default), [`PostgresStore`] (PostgreSQL with
//! pgvector, for several servers over one database) and [`InMemoryStore`] (a fast twin for
//! tests). All pass the suite in [`conformance`]. A store shared by several servers also
//! searches itself ([`StoreSearch`]), since no server's local index would see the others'
//! writes; async tasks are leased ([`Lease`]) so that one server at a time works each.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, NotFoundKind, Result};
use crate::filter::Filter;
use crate::model::{
    ApiKey, ConversationSummary, Doc, DocSelect, Memory, MemoryChange, MemoryStatus, MemoryType,
    Message, Millis, Scope, Task, TaskStatus, UserSummary,
};
use crate::search::{Candidate, TimeRange};

mod embedded;
mod in_memory;
mod migrate;
mod postgres;
mod sql;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use embedded::EmbeddedStore;
pub use in_memory::InMemoryStore;
pub use migrate::{Copied, copy_store};
pub use postgres::{ConnectionInfo, PostgresStore};

/// A monotonically increasing number that every write bumps.
pub type Revision = u64;

/// Everything one write changes, applied all or nothing.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// Chat-log messages to append. Ids must be new.
    pub messages: Vec<Message>,
    /// Memories to insert, or replace whole when the id exists. Replacing a memory's text
    /// drops its stored vectors (unless this batch brings new ones).
    pub upsert_memories: Vec<Memory>,
    /// Ids of memories to remove, with their vectors. Unknown ids are ignored; callers
    /// check scope beforehand.
    pub delete_memories: Vec<String>,
    /// A task to insert or replace.
    pub task: Option<Task>,
    /// Vectors to store (or replace) for memories, written or already stored.
    pub embeddings: Vec<Embedding>,
    /// History entries to append.
    pub history: Vec<MemoryChange>,
    /// The writer's lease on `task`. A new task starts held by it; a stored one is written
    /// only while nobody else holds it, or the whole batch fails and nothing is written:
    /// a worker that lost its task to another server never completes it a second time.
    /// Without a lease the task is written as is and a new one starts unheld.
    pub lease: Option<Lease>,
    /// What the batch was computed from. It lands only if all of it still holds, checked
    /// inside the store's own write transaction, so an edit or an erase by another server
    /// on a shared database between the read and this write is seen too: the batch then
    /// writes nothing and fails ([`Expect::changed`] or [`Expect::task_gone`]).
    pub expect: Expect,
}

/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open.
    pub open: usize,
    /// Open connections idle.
    pub idle: usize,
    /// Most connections it opens.
    pub max: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Searches a replica answered (`store.replica_urls`).
    pub replica_searches: u64,
    /// Searches that read the primary because no replica had caught up in time.
    pub replica_fallbacks: u64,
}

/// What a write was computed from: stored memories as they were read and a task that must
/// still be running. Empty expects nothing.
#[derive(Debug, Default, Clone)]
pub struct Expect {
    /// The project of everything below.
    pub project: String,
    /// Stored memories the write changes, as they were read: id, `update_time`, status.
    pub memories: Vec<(String, Millis, MemoryStatus)>,
    /// A stored task the write continues: it must still be there and running (an erase of
    /// its user removes it).
    pub task: Option<String>,
    /// Ids the batch creates that it did not mint (an import keeps its ids): no memory or
    /// message of any project may hold one yet. Ids are unique across the store, so a
    /// write under a taken id would land on another project's row.
    pub absent: Vec<String>,
}

impl Expect {
    /// Expects only that `task` of `project` still runs.
    pub fn task(project: &str, task: &str) -> Self {
        Self {
            project: project.to_string(),
            memories: vec![],
            task: Some(task.to_string()),
            absent: vec![],
        }
    }

    /// Expects `memories` of `project` as they are now.
    pub fn read(project: &str, memories: &[Memory]) -> Self {
        Self {
            project: project.to_string(),
            memories: memories
                .iter()
                .map(|m| (m.id.clone(), m.update_time, m.status))
                .collect(),
            task: None,
            absent: vec![],
        }
    }

    /// The error of a batch that would create a memory or message under a taken id.
    pub(crate) fn taken(id: &str) -> Error {
        Error::Conflict(format!(
            "id {id} is taken in this store already; nothing was written"
        ))
    }

    /// The error of a batch one of whose memories changed since it was read.
    pub(crate) fn changed(id: &str) -> Error {
        Error::Conflict(format!(
            "memory {id} changed while this write was prepared; nothing was written"
        ))
    }

    /// The error of a batch whose task is gone or no longer running (its user was erased).
    pub(crate) fn task_gone(task: &str) -> Error {
        Error::not_found(format!("task {task}"), NotFoundKind::Task)
    }
}

impl WriteBatch {
    /// The task's lease as column values (`owner`, `lease_until`), and the end of an
    /// `INSERT INTO tasks ... ON CONFLICT (id) DO UPDATE SET ...` that takes the lease and
    /// updates only while nobody else holds the task (SQLite and PostgreSQL agree on this
    /// syntax; zero rows written means the lease is lost). Without a lease: no values, and
    /// nothing appended.
    pub(crate) fn task_lease_sql(&self) -> (Option<&str>, Option<Millis>, &'static str) {
        match &self.lease {
            Some(l) => (
                Some(l.owner.as_str()),
                Some(l.until),
                ", owner = excluded.owner, lease_until = excluded.lease_until \
                 WHERE tasks.owner IS NULL OR tasks.owner = excluded.owner",
            ),
            None => (None, None, ""),
        }
    }
}

/// A worker's hold on a running task until a time. Workers renew their leases while they
/// work; a task whose lease ran out (its worker died) goes to whoever claims it next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it: one id per running service.
    pub owner: String,
    /// When it runs out, unless renewed.
    pub until: Millis,
}

/// A memory's vector under one embedding model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Embedding {
    /// The memory it belongs to.
    pub memory_id: String,
    /// The memory's partition, so a user's vectors load without touching memories.
    pub scope: Scope,
    /// The embedder's `model_id`; vectors of different models never mix.
    pub model: String,
    /// The unit vector.
    pub vector: Vec<f32>,
}

/// How to page through memories.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only memories matching this.
    pub filter: Option<Filter>,
    /// Only memories of this conversation.
    pub conversation_id: Option<String>,
    /// How many to skip (newest first).
    pub offset: usize,
    /// How many to return at most.
    pub limit: usize,
    /// Leave out memories of this type.
    pub exclude_type: Option<MemoryType>,
    /// Only memories in one of these states; `None` lists every state but soft-deleted
    /// (what clients see). The dashboard names `deleted` to look at what was removed.
    pub statuses: Option<Vec<MemoryStatus>>,
}

impl ListQuery {
    /// Whether a memory in state `s` is listed: the reference the SQL stores follow.
    pub fn lists(&self, s: MemoryStatus) -> bool {
        match &self.statuses {
            Some(wanted) => wanted.contains(&s),
            // Soft-deleted memories are kept for their history but never listed.
            None => s != MemoryStatus::Deleted,
        }
    }
}

/// One page of results plus the total that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many matched in all.
    pub total: usize,
}

/// Durable storage of memories, the chat log and tasks; with its roles [`KeyStore`],
/// [`DocStore`] and [`StoreScan`], everything memos keeps.
///
/// Implementations must be safe to share between tasks and must make every acknowledged
/// write durable before returning. They must never return a record of one scope to a
/// call about another.
#[async_trait]
pub trait MemoryStore: KeyStore + DocStore + StoreScan + Send + Sync + 'static {
    /// Applies a batch atomically and returns the revision it produced.
    async fn write(&self, batch: WriteBatch) -> Result<Revision>;

    /// The revision of the last write (0 for an empty store).
    async fn revision(&self) -> Result<Revision>;

    /// The memories with these ids inside the project, in the order asked; ids that do not
    /// exist there are skipped.
    async fn get_memories(&self, project_id: &str, ids: &[String]) -> Result<Vec<Memory>>;

    /// A scope's memories, newest first, filtered and paged.
    /// Never lists soft-deleted memories (status `deleted`).
    async fn list_memories(&self, scope: &Scope, query: &ListQuery) -> Result<Page<Memory>>;

    /// The project's subjects that hold memories (soft-deleted ones not counted), most
    /// recently changed first, then by id; paged.
    async fn list_users(
        &self,
        project_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Page<UserSummary>>;

    /// A subject's conversations, the one with the latest message first (then by id); paged.
    async fn list_conversations(
        &self,
        scope: &Scope,
        limit: usize,
        offset: usize,
    ) -> Result<Page<ConversationSummary>>;

    /// The newest `limit` messages of a conversation, returned oldest first (chat order).
    async fn list_messages(
        &self,
        scope: &Scope,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// The messages an add task brought in, in the order they were sent.
    async fn task_messages(&self, task_id: &str) -> Result<Vec<Message>>;

    /// A task of the project.
    async fn get_task(&self, project_id: &str, task_id: &str) -> Result<Option<Task>>;

    /// How many tasks of every project are in each state, for the operator's metrics.
    async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>>;

    /// How the store's connection pool is used, when it has one (PostgreSQL).
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }

    /// Takes up to `limit` running tasks whose lease ran out before `now` (or that never
    /// had one), oldest first, and leases them to `lease.owner`. Concurrent callers, on one
    /// server or many, never get the same task.
    async fn claim_tasks(&self, lease: &Lease, now: Millis, limit: usize) -> Result<Vec<Task>>;

    /// Extends `lease.owner`'s hold on a running task; false when it holds it no more.
    async fn renew_task(&self, task_id: &str, lease: &Lease) -> Result<bool>;

    /// Removes a user's memories (with their vectors and history), messages, tasks and
    /// documents;
    /// returns how many memories the client could still see (soft-deleted ones not
    /// counted) and the revision it produced.
    async fn delete_user(&self, scope: &Scope) -> Result<(usize, Revision)>;

    /// Whether a scope holds anything at all (memories, messages or documents).
    async fn user_exists(&self, scope: &Scope) -> Result<bool>;

    /// Every vector of a scope's active and archived memories under a model.
    async fn embeddings(&self, scope: &Scope, model: &str) -> Result<Vec<StoredVector>>;

    /// Up to `limit` active or archived memories (any scope) that have no vector under
    /// `model` yet, in write order after the cursor `after`, and the cursor of the last one:
    /// the work the background embedder catches up on, in one walk over the store rather
    /// than one per batch. Archived ones need a vector too: an as-of search finds what was
    /// current then ([`crate::search::current_at`]). Deleted ones are never searched.
    async fn missing_embeddings(
        &self,
        model: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)>;

    /// The active or archived memories among `ids` (of one project) without a vector under `model`:
    /// what the background embedder checks after this process wrote those memories, so that
    /// it never walks the whole store for a few new rows. Unknown ids are left out.
    async fn lacking_embeddings(
        &self,
        project_id: &str,
        ids: &[String],
        model: &str,
    ) -> Result<Vec<Memory>>;

    /// A memory's history, oldest first (empty for an unknown id or another project's).
    /// Removed with the memory by a (hard) delete.
    async fn history(&self, project_id: &str, memory_id: &str) -> Result<Vec<MemoryChange>>;

    /// Retrieval the store runs itself, over data every server sees. `None` (the default):
    /// the service keeps its own indexes in this process (tantivy and the RAM vectors).
    fn searcher(self: Arc<Self>) -> Option<Arc<dyn StoreSearch>> {
        None
    }
}

/// API keys: what a request's `Authorization` is checked against.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new API key.
    async fn insert_key(&self, key: ApiKey) -> Result<()>;

    /// The key with this hash, revoked or not.
    async fn find_key(&self, hash: &str) -> Result<Option<ApiKey>>;

    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes a key by id; false if there is no such key.
    async fn revoke_key(&self, id: &str, at: crate::model::Millis) -> Result<bool>;
}

/// Small JSON documents beside the memories ([`Doc`]): profile templates and profiles,
/// knowledge bases and their files.
#[async_trait]
pub trait DocStore: Send + Sync {
    /// Writes documents, replacing any with the same kind, project, subject and id; all or
    /// none.
    async fn put_docs(&self, docs: Vec<Doc>) -> Result<()>;

    /// The documents `select` selects, by kind, project, subject and id.
    async fn list_docs(&self, select: DocSelect<'_>) -> Result<Vec<Doc>>;

    /// Deletes a project's documents of `kind`, of one subject or any (`None`), with one id
    /// or any; returns how many.
    async fn delete_docs(
        &self,
        project_id: &str,
        kind: &str,
        user_id: Option<&str>,
        id: Option<&str>,
    ) -> Result<usize>;
}

/// Everything, a page at a time in write order: what `memos migrate` copies between
/// stores.
#[async_trait]
pub trait StoreScan: Send + Sync {
    /// Every memory of every scope in a stable order, `limit` at a time after the cursor
    /// that the previous page returned; `None` starts. Used to rebuild indexes.
    async fn scan_memories(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)>;

    /// The chat log in write order, a page at a time after a cursor (for `memos migrate`).
    async fn scan_messages(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Message>, Option<u64>)>;

    /// Every task, a page at a time in write order.
    async fn scan_tasks(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Task>, Option<u64>)>;

    /// Every history entry, a page at a time in write order.
    async fn scan_history(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<MemoryChange>, Option<u64>)>;

    /// Every stored vector, of every model, a page at a time.
    async fn scan_embeddings(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Embedding>, Option<u64>)>;
}

/// The store a configuration names, opened beside any server running on it: for
/// administration (API keys) while the server serves. Nothing of a running server's state
/// is touched, and what is written here (a revoked key) holds at its next request.
pub async fn open_beside_server(config: &crate::Config) -> Result<Arc<dyn MemoryStore>> {
    match config.store.backend {
        crate::config::StoreBackend::Postgres => Ok(Arc::new(
            PostgresStore::connect(&config.store.url, 2).await?,
        )),
        crate::config::StoreBackend::Memory => Err(crate::Error::Config(
            "the in-memory store lives inside its server; it has no keys to manage from outside"
                .into(),
        )),
        crate::config::StoreBackend::Embedded => Ok(Arc::new(EmbeddedStore::open_shared(
            &config.store.data_dir,
        )?)),
    }
}

/// A stored vector with what a dense search filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// The memory.
    pub id: String,
    /// Its `memory_time`, or `create_time` when it has none.
    pub time: Millis,
    /// When it was archived (its `update_time`); `None` while it is active.
    pub archived_at: Option<Millis>,
    /// The vector.
    pub vector: Vec<f32>,
}

/// What a store that searches itself may keep in this process's RAM: copies of the
/// search data of the users searched lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCopies {
    /// Bytes the copies may take in all (0: none kept, every search asks the store).
    pub bytes: u64,
    /// `search.exact_scan_rows` for the copied vectors.
    pub exact_scan_rows: usize,
}

/// Retrieval over data every server sees, for stores that several servers share: an
/// index that only one server's writes kept current would miss what the others write.
///
/// Both retrievers apply the scope, "current at `time.to`" (active, or archived after it),
/// the time range and the filter inside the search, like the local ones, and see every
/// write committed before `since` (the moment the search began), whichever server made
/// it; a store may answer from a copy that is at least that current.
#[async_trait]
pub trait StoreSearch: Send + Sync {
    /// BM25 over the memories' terms ([`crate::text::terms`] of [`Memory::index_text`]).
    /// `terms` come from [`crate::search::query_terms`]; relativity is the score over the
    /// query's idf sum, as the local index computes it.
    async fn lexical(
        &self,
        scope: &Scope,
        terms: &[String],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: std::time::Instant,
    ) -> Result<Vec<Candidate>>;

    /// Makes ready whatever nearest-neighbour index the vectors of a model (`vectors`: its
    /// id and dimensions) need, and what copies the store may keep in RAM. Called once at
    /// start; idempotent.
    async fn prepare(&self, vectors: Option<(&str, usize)>, copies: SearchCopies) -> Result<()>;

    /// The memories whose `model` vectors are nearest to `query` by cosine, best first,
    /// with their cosines.
    #[allow(clippy::too_many_arguments)]
    async fn dense(
        &self,
        scope: &Scope,
        model: &str,
        query: &[f32],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: std::time::Instant,
    ) -> Result<Vec<(String, f32)>>;

    /// Bytes the copies in this process's RAM hold now, if the store keeps any.
    fn copies_bytes(&self) -> Option<u64> {
        None
    }

    /// Ids of the scope's current memories (activated or archived) that `filter` allows,
    /// every write acknowledged before `since` included, from a copy in RAM the store
    /// already holds; `None` when it holds none for the user, cannot decide the filter
    /// there, or more than `cap` match (the caller then asks the store's lists).
    async fn matching_ids(
        &self,
        _scope: &Scope,
        _filter: &Filter,
        _cap: usize,
        _since: std::time::Instant,
    ) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
}

/// The error of a batch whose task another worker holds.
pub(crate) fn lease_lost(task_id: &str) -> crate::Error {
    crate::Error::Unavailable(format!("task {task_id} is held by another worker"))
}

/// The error every backend returns for an API key whose secret or id is taken.
pub(crate) fn duplicate_key() -> crate::Error {
    crate::Error::invalid("key", "an API key with this secret or id already exists")
}

/// Builders for tests, shared by unit tests, the conformance suite and other crates' tests.
#[cfg(any(test, feature = "testing"))]
pub mod tests_support {
    use crate::model::*;

    /// A small deterministic generator (xorshift64*) for tests that replay a fixed seed:
    /// the same seed, the same sequence, with no extra dependency.
    #[derive(Debug, Clone)]
    pub struct Rng(pub u64);

    impl Rng {
        /// The next value.
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// A value below `n` (0 when `n` is 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
    }

    /// A URL of the test PostgreSQL server (`MEMOS_PG_URL`, which `scripts/test.sh` and CI
    /// set) whose `search_path` is a fresh schema, so every test has a database of its own.
    /// `None` when no server is configured; in CI that is a failure.
    pub async fn postgres_schema_url() -> Option<String> {
        let Some(url) = std::env::var("MEMOS_PG_URL").ok().filter(|u| !u.is_empty()) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must start PostgreSQL (scripts/start-postgres.sh) and set MEMOS_PG_URL"
            );
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL answers at MEMOS_PG_URL");
        let conn = tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("a test schema");
        drop(admin);
        let _ = conn.await;
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!(
            "{url}{sep}options=-c%20search_path%3D{schema}%2Cpublic"
        ))
    }

    /// A plain memory of `user` in project `p`.
    pub fn memory(user: &str, conversation: &str, text: &str) -> Memory {
        memory_in("p", user, conversation, text)
    }

    /// A plain memory in a given project.
    pub fn memory_in(project: &str, user: &str, conversation: &str, text: &str) -> Memory {
        let now = now_millis();
        Memory {
            id: uuid::Uuid::new_v4().to_string(),
            scope: Scope::new(project, user),
            conversation_id: conversation.into(),
            key: crate::text::headline(text, 40),
            value: text.into(),
            memory_type: MemoryType::LongTermMemory,
            memory_time: Some(now),
            status: MemoryStatus::Activated,
            confidence: 1.0,
            tags: crate::text::keywords(text, 3),
            info: Default::default(),
            agent_id: None,
            app_id: None,
            sources: vec![],
            reasoning: None,
            create_time: now,
            update_time: now,
        }
    }

    /// A user message.
    pub fn message(scope: &Scope, conversation: &str, text: &str, chat_time: Millis) -> Message {
        let id = uuid::Uuid::new_v4().to_string();
        Message {
            message_id: id.clone(),
            id,
            scope: scope.clone(),
            conversation_id: conversation.into(),
            role: Role::User,
            name: None,
            content: text.into(),
            chat_time,
            create_time: now_millis(),
            task_id: "t".into(),
            raw: None,
        }
    }
}
