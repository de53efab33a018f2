//! [`MemoryService`]: the one facade the HTTP server and the CLI call. It validates input,
//! runs ingestion, keeps the store and the indexes in step, and answers searches.
//!
//! Every write goes through [`MemoryService::commit`]: the store write and the index
//! enqueue happen under one lock, so the index sees store revisions in order and its
//! recorded revision is always a prefix of the store's history.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::config::Config;
use crate::dates;
use crate::embed::Embedder;
use crate::error::{Error, InputErrorKind, NotFoundKind, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::ingest::llm::LlmExtractor;
use crate::ingest::reconcile::{self, Relation};
use crate::ingest::{AddContext, fast};
use crate::model::*;
use crate::search::bm25::{Bm25Index, IndexOp};
use crate::search::vector::{UserVectors, VectorIndex, VectorOp};
use crate::search::{Candidate, TimeRange, fusion};
use crate::store::{
    EmbeddedStore, Embedding, InMemoryStore, Lease, ListQuery, MemoryStore, Page, PostgresStore,
    WriteBatch,
};

/// An edit of one memory (`update/memory`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateInput {
    /// The owner, when the caller names one (a memory of another user is not found).
    pub user_id: Option<String>,
    /// The memory.
    pub memory_id: String,
    /// New text.
    pub value: Option<String>,
    /// New headline.
    pub key: Option<String>,
    /// New tags (replacing the old ones).
    pub tags: Option<Vec<String>>,
    /// New status: `activated` or `archived`.
    pub status: Option<MemoryStatus>,
    /// Why, for the history (default: which fields changed).
    pub note: Option<String>,
}

/// Feedback on what memos remembers (`add/feedback`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackInput {
    /// The end user.
    pub user_id: String,
    /// The conversation it came up in.
    pub conversation_id: String,
    /// What the user said, in their words.
    pub content: String,
    /// When (default now).
    pub time: Option<Millis>,
    /// The agent, if any.
    pub agent_id: Option<String>,
    /// The app, if any.
    pub app_id: Option<String>,
}

/// Correction words at the start of feedback, which are not part of the fact.
static CORRECTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^\s*(?:(?:(?:no|nope|wrong|not true|that's wrong|that is wrong|that's not (?:right|true)|that is not (?:right|true)|actually|correction)\b|不对|错了|不是的|不是这样|其实|纠正一下)[\s,，.。!！:：;；]*)+",
    )
    .expect("valid regex")
});

fn strip_correction(text: &str) -> &str {
    CORRECTION.find(text).map_or(text, |m| &text[m.end()..])
}

/// What an add writes once its facts are related to the stored ones.
#[derive(Debug, Default)]
struct Reconciled {
    /// New memories, and older ones that were merged into or archived.
    memories: Vec<Memory>,
    /// The ids the add reports: new memories, and the older ones repeats merged into.
    ids: Vec<String>,
    /// History entries of the merges and supersessions.
    history: Vec<MemoryChange>,
}

impl Reconciled {
    fn upsert(&mut self, m: Memory) {
        match self.memories.iter_mut().find(|o| o.id == m.id) {
            Some(o) => *o = m,
            None => self.memories.push(m),
        }
    }
}

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
    /// With an LLM configured, a sync add's refinement task (`get/status` tracks it).
    pub refine_task_id: Option<String>,
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
    /// Which retrievers to use.
    pub mode: SearchMode,
}

/// Which retrievers a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// BM25 and dense, fused (dense only when a model is loaded).
    #[default]
    Hybrid,
    /// BM25 only: the baseline.
    Lexical,
    /// Embeddings only.
    Dense,
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
/// Query vectors kept for repeated queries; the cache is cleared when it fills.
const QUERY_CACHE: usize = 4_096;

/// A query's vector, or the embedding under way that will fill it.
type QueryVector = Arc<tokio::sync::OnceCell<Arc<Vec<f32>>>>;
/// Memories embedded per step when catching up on missing vectors.
const EMBED_BATCH: usize = 256;

/// How often the embedder of a server on a shared database looks through every memory.
const SHARED_FULL_PASS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Queued memory ids beyond which the embedder forgets them and searches the store instead.
const VECTOR_QUEUE_MAX: usize = 100_000;

/// (project, id) of each memory, for [`MemoryService::queue_vectors`].
fn written_ids(memories: &[Memory]) -> Vec<(String, String)> {
    memories
        .iter()
        .map(|m| (m.scope.project_id.clone(), m.id.clone()))
        .collect()
}

/// Memory ids by project, waiting for the background embedder.
#[derive(Debug, Default)]
struct VectorQueue {
    ids: HashMap<String, Vec<String>>,
    len: usize,
    /// Set when ids were dropped (too many, or a pass failed): the next pass searches the
    /// whole store, as at start.
    full_pass: bool,
}
/// Stored facts a new fact is compared with.
const RECONCILE_CANDIDATES: usize = 8;
/// Longest `memory_key` an edit may set.
const MAX_KEY_CHARS: usize = 200;
/// Word overlap at which an LLM item restates a fast-path fact from the same message.
const REFINE_OVERLAP: f32 = 0.3;
/// Pages of [`MAX_PAGE_SIZE`] a profile reads at most (2,500 items).
const PROFILE_PAGES: usize = 50;

/// The memory service.
pub struct MemoryService {
    store: Arc<dyn MemoryStore>,
    /// The lexical index of this process; `None` when the store searches itself
    /// ([`MemoryStore::search`]), as a store shared by several servers does.
    index: Option<Bm25Index>,
    embedder: Option<Arc<dyn Embedder>>,
    vectors: VectorIndex,
    /// Query vectors by query text. A cell is inserted before the embedding starts, so
    /// concurrent searches for the same text (a search and its preference search) share one.
    query_cache: std::sync::Mutex<HashMap<String, QueryVector>>,
    config: Config,
    write_lock: Mutex<()>,
    tasks: mpsc::UnboundedSender<Task>,
    /// Wakes the background embedder after memories were stored without vectors.
    embed_wake: Arc<Notify>,
    /// The memories this process wrote since the embedder last looked, which may lack
    /// vectors: it checks just these instead of searching the whole store.
    vector_queue: std::sync::Mutex<VectorQueue>,
    /// One embedding pass at a time: the worker, or a caller of [`Self::embed_pending`].
    embed_turn: Mutex<()>,
    /// The fine path, when `llm.base_url` is set.
    llm: Option<Arc<LlmExtractor>>,
    /// This service's name on the task leases it holds; new at every start.
    worker_id: String,
}

impl std::fmt::Debug for MemoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryService")
            .field("index", &self.index.as_ref().and_then(Bm25Index::path))
            .finish()
    }
}

impl Drop for MemoryService {
    fn drop(&mut self) {
        // Lets the background embedder see the service is gone and end.
        self.embed_wake.notify_one();
    }
}

impl MemoryService {
    /// Opens the backend the configuration names, brings the index up to date with the
    /// store and resumes unfinished add tasks. Must run inside a tokio runtime.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        config.validate()?;
        let embedder = load_embedder(&config)?;
        let (store, index): (Arc<dyn MemoryStore>, Option<Bm25Index>) =
            match config.store.backend.as_str() {
                "memory" => (Arc::new(InMemoryStore::new()), None),
                // Searches run in the database, where every server sees every write.
                "postgres" => (
                    Arc::new(
                        PostgresStore::connect(&config.store.url, config.store.max_connections)
                            .await?
                            .with_index_memory_mb(config.store.vector_index_memory_mb),
                    ),
                    None,
                ),
                _ => {
                    let dir = &config.store.data_dir;
                    (
                        Arc::new(EmbeddedStore::open(dir)?),
                        Some(Bm25Index::open(Some(&dir.join("index")))?),
                    )
                }
            };
        Self::start(store, index, embedder, config).await
    }

    /// Builds a service over given parts (tests, other backends). `index` is the lexical
    /// index of this process (one in RAM when `None`); a store that searches itself
    /// ([`MemoryStore::search`]) needs none.
    pub async fn start(
        store: Arc<dyn MemoryStore>,
        index: Option<Bm25Index>,
        embedder: Option<Arc<dyn Embedder>>,
        config: Config,
    ) -> Result<Arc<Self>> {
        let index = match store.search() {
            Some(search) => {
                if let Some(e) = &embedder {
                    search.prepare_vectors(e.model_id(), e.dim()).await?;
                }
                None
            }
            None => {
                let index = match index {
                    Some(i) => i,
                    None => Bm25Index::open(None)?,
                };
                index.sync_with(store.as_ref()).await?;
                Some(index)
            }
        };
        let llm = if config.llm.base_url.is_empty() {
            None
        } else {
            Some(Arc::new(LlmExtractor::new(config.llm.clone())?))
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let svc = Arc::new(Self {
            store,
            index,
            embedder,
            vectors: VectorIndex::new(),
            query_cache: Default::default(),
            config,
            write_lock: Mutex::new(()),
            tasks: tx,
            embed_wake: Arc::new(Notify::new()),
            // The first pass looks at the whole store: data from before the model, or
            // written by a process that stopped before embedding it.
            vector_queue: std::sync::Mutex::new(VectorQueue {
                full_pass: true,
                ..Default::default()
            }),
            embed_turn: Mutex::new(()),
            llm,
            worker_id: uuid::Uuid::new_v4().to_string(),
        });
        tokio::spawn(task_worker(Arc::downgrade(&svc), rx));
        if svc.embedder.is_some() {
            tokio::spawn(embed_worker(Arc::downgrade(&svc), svc.embed_wake.clone()));
        }
        let pending = svc.claim_orphaned_tasks().await?;
        if pending > 0 {
            tracing::info!(
                tasks = pending,
                "resuming add tasks interrupted by the last shutdown"
            );
        }
        tokio::spawn(task_claimer(Arc::downgrade(&svc)));
        Ok(svc)
    }

    /// A lease on a task for this service, from now.
    fn lease(&self) -> Lease {
        Lease {
            owner: self.worker_id.clone(),
            until: now_millis() + self.config.store.task_lease_ms as Millis,
        }
    }

    /// Claims running tasks whose worker stopped renewing them (a crashed server, or this
    /// one's previous life) and queues them here. Returns how many.
    async fn claim_orphaned_tasks(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let tasks = self
                .store
                .claim_tasks(&self.lease(), now_millis(), 64)
                .await?;
            if tasks.is_empty() {
                return Ok(n);
            }
            n += tasks.len();
            for t in tasks {
                let _ = self.tasks.send(t);
            }
        }
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
        self.commit_with(batch, ops, vec![]).await
    }

    /// [`Self::commit`] with vector changes the batch alone does not imply (deletes by id,
    /// whose scopes the caller knows).
    async fn commit_with(
        &self,
        batch: WriteBatch,
        ops: Vec<IndexOp>,
        extra: Vec<VectorOp>,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let mut vector_ops = vector_ops(&batch);
        vector_ops.extend(extra);
        let _order = self.write_lock.lock().await;
        self.write_locked(batch, ops, vector_ops).await
    }

    /// The body of [`Self::commit_with`], for callers already holding the write lock.
    async fn write_locked(
        &self,
        batch: WriteBatch,
        ops: Vec<IndexOp>,
        vector_ops: Vec<VectorOp>,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let revision = self.store.write(batch).await?;
        match &self.index {
            Some(index) => {
                self.vectors.apply(&vector_ops);
                index.enqueue(ops, revision)
            }
            // The store's own search sees the write the moment it commits.
            None => {
                let (done, wait) = oneshot::channel();
                let _ = done.send(Ok(()));
                Ok(wait)
            }
        }
    }

    /// BM25 candidates from whichever lexical index serves this process.
    async fn lexical_candidates(
        &self,
        scope: &Scope,
        query: &str,
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        match (&self.index, self.store.search()) {
            (Some(index), _) => index.search(scope, query, filter, time, limit),
            (None, Some(search)) => {
                search
                    .lexical(
                        scope,
                        &crate::search::query_terms(query),
                        filter,
                        time,
                        limit,
                    )
                    .await
            }
            (None, None) => unreachable!("start gives a store without search an index"),
        }
    }

    /// The embedding model in use, if any.
    pub fn embedder(&self) -> Option<&dyn Embedder> {
        self.embedder.as_deref()
    }

    /// Forgets cached query vectors, so the next searches pay for their embeddings again
    /// (benchmarks measure cold queries).
    pub fn clear_query_cache(&self) {
        self.query_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Vectors for new memories when the configuration wants them before the add returns;
    /// otherwise none, and the background embedder is woken after the commit.
    async fn inline_embeddings(&self, memories: &[Memory]) -> Result<Vec<Embedding>> {
        if self.config.embed.inline {
            self.embed_memories(memories).await
        } else {
            Ok(vec![])
        }
    }

    /// Vectors for memories, computed off the async executor.
    async fn embed_memories(&self, memories: &[Memory]) -> Result<Vec<Embedding>> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(vec![]);
        };
        if memories.is_empty() {
            return Ok(vec![]);
        }
        let model = embedder.model_id().to_string();
        let texts: Vec<String> = memories.iter().map(embedding_text).collect();
        let vectors = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed_documents(&refs)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("embedding worker failed: {e}")))??;
        Ok(memories
            .iter()
            .zip(vectors)
            .map(|(m, vector)| Embedding {
                memory_id: m.id.clone(),
                scope: m.scope.clone(),
                model: model.clone(),
                vector,
            })
            .collect())
    }

    /// The query's vector, from the cache when the same query came before.
    async fn query_vector(
        &self,
        embedder: &Arc<dyn Embedder>,
        query: &str,
    ) -> Result<Arc<Vec<f32>>> {
        let cell = {
            let mut cache = self.query_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(query) {
                c.clone()
            } else {
                if cache.len() >= QUERY_CACHE {
                    cache.clear();
                }
                let c = QueryVector::default();
                cache.insert(query.to_string(), c.clone());
                c
            }
        };
        // A failed embedding leaves the cell empty: the next caller tries again.
        cell.get_or_try_init(|| async {
            let (e, q) = (embedder.clone(), query.to_string());
            let v = tokio::task::spawn_blocking(move || e.embed_query(&q))
                .await
                .map_err(|e| Error::Unavailable(format!("embedding worker failed: {e}")))??;
            Ok::<_, Error>(Arc::new(v))
        })
        .await
        .cloned()
    }

    /// A scope's vectors, loaded from the store on first use.
    async fn user_vectors(
        &self,
        scope: &Scope,
        model: &str,
    ) -> Result<Arc<std::sync::RwLock<UserVectors>>> {
        if let Some(u) = self.vectors.get(scope) {
            return Ok(u);
        }
        // Under the write lock no write can land between the load and the install.
        let _order = self.write_lock.lock().await;
        if let Some(u) = self.vectors.get(scope) {
            return Ok(u);
        }
        let rows = self.store.embeddings(scope, model).await?;
        let big = rows.len() >= TRIM_AFTER_ROWS;
        let installed = self.vectors.install(scope.clone(), rows);
        if big {
            release_freed_memory();
        }
        Ok(installed)
    }

    /// Dense candidates: exact cosine over the user's vectors, filters applied inside.
    async fn dense_candidates(
        &self,
        scope: &Scope,
        input: &SearchInput,
        time: TimeRange,
        pool: usize,
    ) -> Result<Vec<Candidate>> {
        let Some(embedder) = &self.embedder else {
            return Ok(vec![]);
        };
        let query = self.query_vector(embedder, &input.query).await?;
        let hits = match (&self.index, self.store.search()) {
            (Some(index), _) => {
                let users = self.user_vectors(scope, embedder.model_id()).await?;
                let allowed = match &input.filter {
                    Some(f) => Some(index.matching_ids(scope, f, time)?),
                    None => None,
                };
                users.read().unwrap_or_else(|e| e.into_inner()).search(
                    &query,
                    pool,
                    time,
                    allowed.as_ref(),
                )
            }
            (None, Some(search)) => {
                search
                    .dense(
                        scope,
                        embedder.model_id(),
                        &query,
                        input.filter.as_ref(),
                        time,
                        pool,
                    )
                    .await?
            }
            (None, None) => unreachable!("start gives a store without search an index"),
        };
        Ok(hits
            .into_iter()
            .map(|(id, cos)| Candidate {
                id,
                score: cos,
                relativity: embedder.calibrate(cos),
            })
            .collect())
    }

    /// Embeds every stored memory that has no vector under the current model: memories
    /// added since the last pass (adds do not wait for vectors unless `embed.inline`), and
    /// data from before the model was configured. Returns how many got one.
    ///
    /// The bench and tests call this to wait until dense search sees everything added.
    pub async fn embed_pending(&self) -> Result<usize> {
        let Some(embedder) = &self.embedder else {
            return Ok(0);
        };
        let _turn = self.embed_turn.lock().await;
        // This pass finds everything queued so far: queued memories were committed first.
        *self.vector_queue.lock().unwrap_or_else(|e| e.into_inner()) = VectorQueue::default();
        let result = async {
            let (mut done, mut after) = (0, None);
            loop {
                let (missing, last) = self
                    .store
                    .missing_embeddings(embedder.model_id(), after, EMBED_BATCH)
                    .await?;
                if missing.is_empty() {
                    break;
                }
                // Memories before the cursor that change meanwhile are queued by their writes.
                after = last;
                let embeddings = self.embed_memories(&missing).await?;
                done += self.commit_embeddings(&missing, embeddings).await?;
            }
            Ok(done)
        }
        .await;
        self.after_pass(result)
    }

    /// Hands memories just written to the background embedder, which gives a vector to those
    /// that lack one.
    fn queue_vectors(&self, written: Vec<(String, String)>) {
        if self.embedder.is_none() {
            return;
        }
        {
            let mut q = self.vector_queue.lock().unwrap_or_else(|e| e.into_inner());
            for (project, id) in written {
                if q.len >= VECTOR_QUEUE_MAX {
                    q.ids.clear();
                    q.len = 0;
                    q.full_pass = true;
                }
                if !q.full_pass {
                    q.ids.entry(project).or_default().push(id);
                    q.len += 1;
                }
            }
        }
        self.embed_wake.notify_one();
    }

    /// Embeds the queued memories that lack a vector (or, after an overflow or a failure,
    /// everything that does, like [`Self::embed_pending`]). Returns how many got one.
    async fn embed_queued(&self) -> Result<usize> {
        let Some(embedder) = &self.embedder else {
            return Ok(0);
        };
        let queued =
            std::mem::take(&mut *self.vector_queue.lock().unwrap_or_else(|e| e.into_inner()));
        if queued.full_pass {
            return self.embed_pending().await;
        }
        let result = async {
            let _turn = self.embed_turn.lock().await;
            let mut done = 0;
            for (project, ids) in &queued.ids {
                for chunk in ids.chunks(EMBED_BATCH) {
                    let lacking = self
                        .store
                        .lacking_embeddings(project, chunk, embedder.model_id())
                        .await?;
                    if lacking.is_empty() {
                        continue;
                    }
                    let embeddings = self.embed_memories(&lacking).await?;
                    done += self.commit_embeddings(&lacking, embeddings).await?;
                }
            }
            Ok(done)
        }
        .await;
        self.after_pass(result)
    }

    /// After a failed pass some memories may still lack vectors that no queue remembers:
    /// the next pass looks everywhere.
    fn after_pass(&self, result: Result<usize>) -> Result<usize> {
        if result.is_err() {
            self.vector_queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .full_pass = true;
        }
        result
    }

    /// Stores vectors computed outside the write lock, skipping memories that were deleted
    /// or changed meanwhile (a changed one is picked up again by the next pass).
    async fn commit_embeddings(
        &self,
        embedded: &[Memory],
        embeddings: Vec<Embedding>,
    ) -> Result<usize> {
        let _order = self.write_lock.lock().await;
        let mut by_project: HashMap<&str, Vec<String>> = HashMap::new();
        for m in embedded {
            by_project
                .entry(m.scope.project_id.as_str())
                .or_default()
                .push(m.id.clone());
        }
        let mut live: HashMap<String, Memory> = HashMap::new();
        for (project, ids) in by_project {
            for m in self.store.get_memories(project, &ids).await? {
                live.insert(m.id.clone(), m);
            }
        }
        let mut ops = Vec::new();
        let keep: Vec<Embedding> = embeddings
            .into_iter()
            .zip(embedded)
            .filter(|(_, then)| {
                live.get(&then.id).is_some_and(|now| {
                    now.value == then.value && now.update_time == then.update_time
                })
            })
            .map(|(e, m)| {
                if m.status == MemoryStatus::Activated {
                    ops.push(VectorOp::Upsert {
                        scope: e.scope.clone(),
                        id: e.memory_id.clone(),
                        time: m.memory_time.unwrap_or(m.create_time),
                        vector: e.vector.clone(),
                    });
                }
                e
            })
            .collect();
        let n = keep.len();
        if n > 0 {
            drop(
                self.write_locked(
                    WriteBatch {
                        embeddings: keep,
                        ..Default::default()
                    },
                    vec![],
                    ops,
                )
                .await?,
            );
        }
        Ok(n)
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
            ..Default::default()
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
                        lease: Some(self.lease()),
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
                refine_task_id: None,
            });
        }

        let previous = self
            .previous_message(&scope, &input.conversation_id, &messages)
            .await?;
        let extracted = fast::extract(&ctx, &messages, previous.as_ref(), now);
        let Reconciled {
            memories,
            ids,
            history,
        } = self.reconcile(&scope, extracted, now).await?;
        let embeddings = self.inline_embeddings(&memories).await?;
        task.status = TaskStatus::Completed;
        task.memory_ids = ids;
        let ops = memories
            .iter()
            .map(|m| IndexOp::Upsert(Box::new(m.clone())))
            .collect();
        let written = written_ids(&memories);
        let wait = self
            .commit(
                WriteBatch {
                    messages,
                    upsert_memories: memories,
                    task: Some(task.clone()),
                    embeddings,
                    history,
                    ..Default::default()
                },
                ops,
            )
            .await?;
        indexed(wait).await?;
        self.queue_vectors(written);
        // The fine path runs after the fast one has answered: its own task, durable, which
        // refines the ids just handed out in place.
        let refine_task_id = match &self.llm {
            Some(_) => Some(self.queue_refinement(&ctx, &task).await?),
            None => None,
        };
        Ok(AddOutcome {
            task_id,
            status: TaskStatus::Completed,
            memory_ids: task.memory_ids,
            refine_task_id,
        })
    }

    /// Records and queues an LLM refinement of a finished fast-path add.
    async fn queue_refinement(&self, ctx: &AddContext, source: &Task) -> Result<String> {
        let now = now_millis();
        let ctx = AddContext {
            refine_of: Some(source.id.clone()),
            fast_ids: source.memory_ids.clone(),
            ..ctx.clone()
        };
        let task = Task {
            id: uuid::Uuid::new_v4().to_string(),
            scope: source.scope.clone(),
            status: TaskStatus::Running,
            payload: serde_json::to_value(&ctx).expect("context serialises"),
            memory_ids: vec![],
            error: None,
            create_time: now,
            update_time: now,
        };
        drop(
            self.commit(
                WriteBatch {
                    task: Some(task.clone()),
                    lease: Some(self.lease()),
                    ..Default::default()
                },
                vec![],
            )
            .await?,
        );
        let id = task.id.clone();
        self.tasks
            .send(task)
            .map_err(|_| Error::Unavailable("task worker stopped".into()))?;
        Ok(id)
    }

    /// The fine path over `messages`: asks the LLM for memory items, rewrites the fast-path
    /// items they restate in place (same id, history `updated`), and reconciles the rest
    /// with the stored memories like any new fact. Returns the ids it wrote.
    async fn refine(
        &self,
        llm: &LlmExtractor,
        ctx: &AddContext,
        messages: &[Message],
        fast_ids: &[String],
    ) -> Result<Vec<String>> {
        let now = now_millis();
        let items = llm.extract(ctx, messages, now).await?;
        let mut fast: Vec<Memory> = self
            .store
            .get_memories(&ctx.scope.project_id, fast_ids)
            .await?
            .into_iter()
            .filter(|m| m.scope == ctx.scope && m.status == MemoryStatus::Activated)
            .collect();
        let mut refined: Vec<usize> = Vec::new();
        let mut ids = Vec::new();
        let mut history = Vec::new();
        let mut fresh = Vec::new();
        for item in items {
            // The fast fact this item restates: made from a message it names, and
            // sharing enough words, not already refined by an earlier item.
            let target = fast.iter().enumerate().position(|(i, f)| {
                !refined.contains(&i)
                    && f.memory_type == MemoryType::UserMemory
                    && item.memory_type == MemoryType::UserMemory
                    && f.sources
                        .iter()
                        .any(|s| item.sources.iter().any(|t| t.message_id == s.message_id))
                    && reconcile::overlap(&item, f) >= REFINE_OVERLAP
            });
            match target {
                Some(i) => {
                    let f = &mut fast[i];
                    history.push(MemoryChange {
                        memory_id: f.id.clone(),
                        scope: f.scope.clone(),
                        time: now,
                        kind: ChangeKind::Updated,
                        related_id: None,
                        before: Some(f.value.clone()),
                        note: format!("refined by the LLM ({})", llm.model()),
                    });
                    f.key = item.key;
                    f.value = item.value;
                    f.tags = item.tags;
                    f.memory_time = item.memory_time;
                    f.confidence = item.confidence;
                    f.update_time = now;
                    refined.push(i);
                    ids.push(f.id.clone());
                }
                None => fresh.push(item),
            }
        }
        let reconciled = self.reconcile(&ctx.scope, fresh, now).await?;
        ids.extend(reconciled.ids);
        history.extend(reconciled.history);
        let mut memories: Vec<Memory> = refined.iter().map(|&i| fast[i].clone()).collect();
        memories.extend(reconciled.memories);
        // Refined texts lose their old vectors (the store drops them); the RAM copies go too.
        let extra: Vec<VectorOp> = refined
            .iter()
            .map(|&i| VectorOp::Delete {
                scope: fast[i].scope.clone(),
                id: fast[i].id.clone(),
            })
            .collect();
        let ops = memories
            .iter()
            .map(|m| IndexOp::Upsert(Box::new(m.clone())))
            .collect();
        let written = written_ids(&memories);
        indexed(
            self.commit_with(
                WriteBatch {
                    upsert_memories: memories,
                    history,
                    ..Default::default()
                },
                ops,
                extra,
            )
            .await?,
        )
        .await?;
        self.queue_vectors(written);
        Ok(ids)
    }

    /// The LLM extractor, when one is configured.
    pub fn llm(&self) -> Option<&LlmExtractor> {
        self.llm.as_deref()
    }

    /// Relates each new profile fact to what the user said before ([`reconcile::relate`]):
    /// a repeat merges into the older item (its id survives and is the one reported, its
    /// `update_time` moves, its sources grow); a contradiction archives the older item and
    /// links the two in their histories. Other memories pass through.
    async fn reconcile(
        &self,
        scope: &Scope,
        extracted: Vec<Memory>,
        now: Millis,
    ) -> Result<Reconciled> {
        let mut out = Reconciled::default();
        if !extracted
            .iter()
            .any(|m| m.memory_type == MemoryType::UserMemory)
        {
            out.ids = extracted.iter().map(|m| m.id.clone()).collect();
            out.memories = extracted;
            return Ok(out);
        }
        let profile = Filter::only(Condition::MemoryType(MemoryType::UserMemory));
        for new in extracted {
            if new.memory_type != MemoryType::UserMemory {
                out.ids.push(new.id.clone());
                out.memories.push(new);
                continue;
            }
            // Earlier facts of this same add first, then the closest stored ones.
            let mut candidates: Vec<Memory> = out
                .memories
                .iter()
                .filter(|m| {
                    m.memory_type == MemoryType::UserMemory && m.status == MemoryStatus::Activated
                })
                .cloned()
                .collect();
            let hits = self
                .lexical_candidates(
                    scope,
                    &new.value,
                    Some(&profile),
                    TimeRange::default(),
                    RECONCILE_CANDIDATES,
                )
                .await?;
            let ids: Vec<String> = hits.into_iter().map(|c| c.id).collect();
            let stored = self.store.get_memories(&scope.project_id, &ids).await?;
            candidates.extend(stored.into_iter().filter(|m| {
                m.scope == *scope
                    && m.status == MemoryStatus::Activated
                    && !out.memories.iter().any(|o| o.id == m.id)
            }));
            let relation = |r| {
                candidates
                    .iter()
                    .find(|old| reconcile::relate(&new, old) == r)
            };
            if let Some(old) = relation(Relation::Repeat) {
                let mut old = out
                    .memories
                    .iter()
                    .find(|m| m.id == old.id)
                    .cloned()
                    .unwrap_or_else(|| old.clone());
                for src in &new.sources {
                    if !old.sources.iter().any(|s| s.message_id == src.message_id) {
                        old.sources.push(src.clone());
                    }
                }
                for t in &new.tags {
                    if !old.tags.contains(t) {
                        old.tags.push(t.clone());
                    }
                }
                old.update_time = now;
                out.history.push(MemoryChange {
                    memory_id: old.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Merged,
                    related_id: None,
                    before: None,
                    note: new.value.clone(),
                });
                if !out.ids.contains(&old.id) {
                    out.ids.push(old.id.clone());
                }
                out.upsert(old);
                continue;
            }
            if let Some(old) = relation(Relation::Contradicts) {
                let mut old = old.clone();
                out.history.push(MemoryChange {
                    memory_id: old.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Superseded,
                    related_id: Some(new.id.clone()),
                    before: Some(old.value.clone()),
                    note: new.value.clone(),
                });
                out.history.push(MemoryChange {
                    memory_id: new.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Supersedes,
                    related_id: Some(old.id.clone()),
                    before: None,
                    note: old.value.clone(),
                });
                old.status = MemoryStatus::Archived;
                old.update_time = now;
                out.upsert(old);
            }
            out.ids.push(new.id.clone());
            out.memories.push(new);
        }
        Ok(out)
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
        // Queued tasks may have waited past their lease and gone to another server.
        match self.store.renew_task(&task.id, &self.lease()).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "could not renew a task lease; leaving the task to the next claim");
                return;
            }
        }
        let heartbeat = tokio::spawn(renew_while_working(
            self.store.clone(),
            task.id.clone(),
            self.worker_id.clone(),
            self.config.store.task_lease_ms,
        ));
        self.run_task(&mut task).await;
        heartbeat.abort();
    }

    /// The work of [`Self::process_task`], while its lease is renewed.
    async fn run_task(&self, task: &mut Task) {
        let result: Result<()> = async {
            let ctx: AddContext = serde_json::from_value(task.payload.clone())
                .map_err(|e| Error::Unavailable(format!("unreadable task payload: {e}")))?;
            if let Some(source) = &ctx.refine_of {
                let llm = self
                    .llm
                    .clone()
                    .ok_or_else(|| Error::Unavailable("no LLM is configured any more".into()))?;
                let messages = self.store.task_messages(source).await?;
                task.memory_ids = self.refine(&llm, &ctx, &messages, &ctx.fast_ids).await?;
            } else if task.memory_ids.is_empty() {
                let messages = self.store.task_messages(&task.id).await?;
                let previous = self
                    .previous_message(&task.scope, &ctx.conversation_id, &messages)
                    .await?;
                let now = now_millis();
                let extracted = fast::extract(&ctx, &messages, previous.as_ref(), now);
                let Reconciled {
                    memories,
                    ids,
                    history,
                } = self.reconcile(&task.scope, extracted, now).await?;
                let embeddings = self.inline_embeddings(&memories).await?;
                task.memory_ids = ids;
                task.update_time = now;
                let ops = memories
                    .iter()
                    .map(|m| IndexOp::Upsert(Box::new(m.clone())))
                    .collect();
                let written = written_ids(&memories);
                let batch = WriteBatch {
                    upsert_memories: memories,
                    task: Some(task.clone()),
                    embeddings,
                    history,
                    lease: Some(self.lease()),
                    ..Default::default()
                };
                indexed(self.commit(batch, ops).await?).await?;
                self.queue_vectors(written);
                // Async adds wait for the fine path too: `completed` covers both.
                if let Some(llm) = self.llm.clone() {
                    let fast_ids = task.memory_ids.clone();
                    match self.refine(&llm, &ctx, &messages, &fast_ids).await {
                        Ok(more) => {
                            for id in more {
                                if !task.memory_ids.contains(&id) {
                                    task.memory_ids.push(id);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(task = %task.id, error = %e, "LLM extraction failed; the fast-path memories stand"),
                    }
                }
            }
            task.status = TaskStatus::Completed;
            task.update_time = now_millis();
            drop(
                self.commit(
                    WriteBatch {
                        task: Some(task.clone()),
                        lease: Some(self.lease()),
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
            task.error = Some(if task.payload.get("refine_of").is_some() {
                "LLM extraction failed; the fast-path memories stand".into()
            } else {
                "memory extraction failed; the messages are kept in the chat log".into()
            });
            task.update_time = now_millis();
            if let Err(e) = self
                .commit(
                    WriteBatch {
                        task: Some(task.clone()),
                        lease: Some(self.lease()),
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
        let reference = input.query_time.unwrap_or_else(now_millis);
        let time = TimeRange::until(input.query_time);
        // "last week", "in May", "上个月": the retrievers run once more inside that window, so
        // memories from then both enter the pool and, found twice, rank higher.
        let window = if s.date_weight > 0.0 {
            dates::find(&input.query, reference)
        } else {
            None
        };
        let mut ranges = vec![(1.0, time)];
        if let Some(w) = &window {
            ranges.push((s.date_weight, time.within(w.start, w.end)));
        }
        let mut lists = Vec::new();
        for (weight, range) in ranges {
            // Both retrievers at once: over PostgreSQL the database runs the BM25 query
            // while this process embeds the query.
            let lexical = async {
                if input.mode == SearchMode::Dense {
                    return Ok(None);
                }
                self.lexical_candidates(&scope, &input.query, input.filter.as_ref(), range, pool)
                    .await
                    .map(Some)
            };
            let dense = async {
                if input.mode == SearchMode::Lexical || self.embedder.is_none() {
                    return Ok(None);
                }
                self.dense_candidates(&scope, &input, range, pool)
                    .await
                    .map(Some)
            };
            let (bm25, dense) = tokio::join!(lexical, dense);
            if let Some(bm25) = bm25? {
                lists.push((weight * s.lexical_weight, bm25));
            }
            if let Some(dense) = dense? {
                lists.push((weight * s.dense_weight, dense));
            }
        }
        let fused = if s.fusion == "rrf" {
            fusion::fuse(&lists)
        } else {
            fusion::fuse_scores(&lists)
        };
        let ids: Vec<String> = fused.iter().map(|c| c.id.clone()).collect();
        let mut by_id: HashMap<String, Memory> = self
            .store
            .get_memories(project_id, &ids)
            .await?
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        let mut ranked: Vec<(f32, f32, Memory)> = fused
            .into_iter()
            .filter_map(|c| {
                // The index is derived data: trust only what the store confirms for this user.
                let m = by_id.remove(&c.id).filter(|m| m.scope == scope)?;
                let boost = match &input.conversation_id {
                    Some(conv) if *conv == m.conversation_id => s.conversation_boost,
                    _ => 1.0,
                };
                Some((c.score * boost, (c.relativity * boost).clamp(0.0, 1.0), m))
            })
            .collect();
        // Stable: equal keys keep the fused order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let ranked = self.suppress_duplicates(ranked, limit);
        let working = self
            .working_set(&scope, input.conversation_id.as_deref())
            .await?;
        Ok(ranked
            .into_iter()
            .map(|(_, relativity, m)| SearchHit {
                memory_type: if working.contains(&m.id) {
                    MemoryType::WorkingMemory
                } else {
                    m.memory_type
                },
                relativity,
                memory: m,
            })
            .collect())
    }

    /// Keeps the top `limit` of `ranked`, moving any item nearly identical to a better one
    /// below the rest (maximal marginal relevance with a similarity floor: only near-copies
    /// pay, so ordinary results keep their order). Similarity is the overlap of the word
    /// sets: vector cosines cannot tell a copy from a paraphrase (e5 puts most related
    /// sentences above 0.9), and suppressing paraphrases cost recall on LoCoMo.
    fn suppress_duplicates(
        &self,
        ranked: Vec<(f32, f32, Memory)>,
        limit: usize,
    ) -> Vec<(f32, f32, Memory)> {
        let threshold = self.config.search.duplicate_similarity;
        if threshold > 1.0 || ranked.len() <= 1 {
            return ranked.into_iter().take(limit).collect();
        }
        let words = |m: &Memory| -> HashSet<String> {
            crate::text::terms(&embedding_text(m)).into_iter().collect()
        };
        let similarity = |a: &HashSet<String>, b: &HashSet<String>| {
            let union = a.union(b).count();
            if union == 0 {
                1.0
            } else {
                a.intersection(b).count() as f32 / union as f32
            }
        };
        let mut kept: Vec<((f32, f32, Memory), HashSet<String>)> = Vec::with_capacity(limit);
        let mut copies = Vec::new();
        for item in ranked {
            if kept.len() == limit {
                break;
            }
            let w = words(&item.2);
            if kept.iter().any(|(_, k)| similarity(k, &w) >= threshold) {
                copies.push(item);
            } else {
                kept.push((item, w));
            }
        }
        let mut out: Vec<(f32, f32, Memory)> = kept.into_iter().map(|(i, _)| i).collect();
        let room = limit - out.len();
        out.extend(copies.into_iter().take(room));
        out
    }

    /// The user's stated preferences most relevant to a query (profile items tagged
    /// [`fast::PREFERENCE_TAG`]), ranked like [`Self::search`], with the same filter and
    /// `query_time`.
    pub async fn search_preferences(
        &self,
        project_id: &str,
        input: &SearchInput,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        // Tags compare lower-cased, as a parsed `contains` condition does.
        let only = Filter::only(Condition::TagContains(fast::PREFERENCE_TAG.to_lowercase()));
        let filter = match &input.filter {
            None => only,
            Some(f) if f.logic == Logic::And => {
                let mut f = f.clone();
                f.conditions.extend(only.conditions);
                f
            }
            // An `or` filter cannot take one more `and` condition: search with it and
            // keep the preferences.
            Some(f) => f.clone(),
        };
        let hits = self
            .search(
                project_id,
                SearchInput {
                    filter: Some(filter),
                    limit: Some(limit.clamp(1, self.config.search.max_limit)),
                    ..input.clone()
                },
            )
            .await?;
        Ok(hits
            .into_iter()
            .filter(|h| h.memory.tags.iter().any(|t| t == fast::PREFERENCE_TAG))
            .collect())
    }

    /// A user's profile: every active `UserMemory` item, grouped by headline (topic), the
    /// biggest group first, newest items first within a group.
    pub async fn profile(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Vec<(String, Vec<Memory>)>> {
        self.check_user(user_id)?;
        let scope = Scope::new(project_id, user_id);
        let filter = Some(Filter::only(Condition::MemoryType(MemoryType::UserMemory)));
        let mut groups: Vec<(String, Vec<Memory>)> = Vec::new();
        let mut page = 0;
        loop {
            let q = ListQuery {
                filter: filter.clone(),
                limit: MAX_PAGE_SIZE,
                offset: page * MAX_PAGE_SIZE,
                ..Default::default()
            };
            let items = self.store.list_memories(&scope, &q).await?.items;
            let done = items.len() < MAX_PAGE_SIZE || page >= PROFILE_PAGES;
            for m in items {
                if m.status != MemoryStatus::Activated {
                    continue;
                }
                match groups.iter_mut().find(|(k, _)| *k == m.key) {
                    Some((_, g)) => g.push(m),
                    None => groups.push((m.key.clone(), vec![m])),
                }
            }
            if done {
                break;
            }
            page += 1;
        }
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        Ok(groups)
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
        self.get_any(project_id, user_id, id)
            .await?
            .filter(|m| m.status != MemoryStatus::Deleted)
            .ok_or_else(|| Error::not_found(format!("memory {id}"), NotFoundKind::Record))
    }

    /// A memory whatever its status, soft-deleted ones included.
    async fn get_any(
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
        let found_memories: Vec<Memory> = self
            .store
            .get_memories(project_id, &unique)
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
        let vector_ops = found_memories
            .iter()
            .map(|m| VectorOp::Delete {
                scope: m.scope.clone(),
                id: m.id.clone(),
            })
            .collect();
        let (batch, ops) = if hard {
            let ops = unique
                .iter()
                .map(|id| IndexOp::Delete(id.clone()))
                .collect();
            let batch = WriteBatch {
                delete_memories: unique.clone(),
                ..Default::default()
            };
            (batch, ops)
        } else {
            let now = now_millis();
            let mut batch = WriteBatch::default();
            let mut ops = Vec::new();
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
                ops.push(IndexOp::Upsert(Box::new(m.clone())));
                batch.upsert_memories.push(m);
            }
            (batch, ops)
        };
        let wait = self.commit_with(batch, ops, vector_ops).await?;
        indexed(wait).await?;
        Ok(unique.len())
    }

    /// Deletes every memory of a user that matches `filter` (soft or hard, as
    /// [`Self::delete`]). Returns how many; none matching is not an error.
    pub async fn delete_matching(
        &self,
        project_id: &str,
        user_id: &str,
        filter: &Filter,
        hard: bool,
    ) -> Result<usize> {
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
        let mut m = self
            .get(project_id, input.user_id.as_deref(), &input.memory_id)
            .await?;
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
        let extra = if changed.contains(&"value") {
            vec![VectorOp::Delete {
                scope: m.scope.clone(),
                id: m.id.clone(),
            }]
        } else {
            vec![]
        };
        let written = written_ids(std::slice::from_ref(&m));
        let batch = WriteBatch {
            upsert_memories: vec![m.clone()],
            history,
            ..Default::default()
        };
        let ops = vec![IndexOp::Upsert(Box::new(m.clone()))];
        indexed(self.commit_with(batch, ops, extra).await?).await?;
        self.queue_vectors(written);
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
                }],
                tags: vec!["feedback".into()],
                info: Map::new(),
                agent_id: input.agent_id,
                app_id: input.app_id,
                async_mode: false,
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
            let wait = match &self.index {
                Some(index) => {
                    self.vectors.apply(&[VectorOp::DropScope(scope.clone())]);
                    Some(index.enqueue(vec![IndexOp::DeleteScope(scope)], revision)?)
                }
                None => None,
            };
            (n, wait)
        };
        if let Some(wait) = wait {
            indexed(wait).await?;
        }
        Ok(n)
    }
}

/// What the embedding model reads of a memory: the text without the date prefix, which
/// only adds noise to a vector.
fn embedding_text(m: &Memory) -> String {
    let v = m.value.as_str();
    v.strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .map_or(v, |(_, rest)| rest)
        .to_string()
}

/// The vector changes a batch implies, known before it is written.
fn vector_ops(batch: &WriteBatch) -> Vec<VectorOp> {
    let written: HashMap<&str, &Memory> = batch
        .upsert_memories
        .iter()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut ops: Vec<VectorOp> = batch
        .upsert_memories
        .iter()
        .filter(|m| m.status != MemoryStatus::Activated)
        .map(|m| VectorOp::Delete {
            scope: m.scope.clone(),
            id: m.id.clone(),
        })
        .collect();
    for e in &batch.embeddings {
        match written.get(e.memory_id.as_str()) {
            Some(m) if m.status != MemoryStatus::Activated => {}
            Some(m) => ops.push(VectorOp::Upsert {
                scope: e.scope.clone(),
                id: e.memory_id.clone(),
                time: m.memory_time.unwrap_or(m.create_time),
                vector: e.vector.clone(),
            }),
            // A vector of a memory written earlier: the caller supplies its op.
            None => {}
        }
    }
    ops
}

/// A user's f32 rows are freed once packed to int8; above this many, hand the freed pages back.
const TRIM_AFTER_ROWS: usize = 10_000;

/// Returns freed heap pages to the OS. Loading a big user's vectors allocates their f32
/// copies (1.5 KB each) only to pack them into int8; glibc keeps such freed memory in the
/// process, which at 100k rows left about 2 KB per memory of RSS behind.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Waits until the index writer has committed a write's changes: from then on they are
/// searchable.
async fn indexed(wait: oneshot::Receiver<Result<()>>) -> Result<()> {
    wait.await
        .map_err(|_| Error::Unavailable("index writer stopped".into()))?
}

/// Loads the configured embedding model, or explains why dense search is off.
fn load_embedder(config: &Config) -> Result<Option<Arc<dyn Embedder>>> {
    let dir = &config.embed.model_dir;
    if dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    match crate::embed::load(dir) {
        Ok(e) => {
            // Loading builds each weight matrix twice (as stored, then in the layout the
            // encoder multiplies fastest) and frees the first copies: give those pages back.
            release_freed_memory();
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                model = e.model_id(),
                dim = e.dim(),
                ms,
                "embedding model loaded"
            );
            Ok(Some(Arc::from(e)))
        }
        Err(e) if config.embed.required => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "no embedding model: serving lexical (BM25) search only");
            Ok(None)
        }
    }
}

/// Embeds memories stored without vectors: once at start (data from before the model), then
/// each time an add wakes it. A failure is logged and retried on the next wake. Holds the
/// service only while working, and ends when the service is dropped (which wakes it).
async fn embed_worker(svc: Weak<MemoryService>, wake: Arc<Notify>) {
    loop {
        let Some(strong) = svc.upgrade() else { return };
        match strong.embed_queued().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(memories = n, "embedded new memories"),
            Err(e) => {
                tracing::error!(error = %e, "background embedding failed; retried on the next add");
            }
        }
        // On a database shared by several servers, another server may stop before embedding
        // what it wrote: now and then look through everything, as at start.
        let shared = strong.store.search().is_some();
        drop(strong);
        if shared {
            if tokio::time::timeout(SHARED_FULL_PASS_EVERY, wake.notified())
                .await
                .is_err()
                && let Some(s) = svc.upgrade()
            {
                s.vector_queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .full_pass = true;
            }
        } else {
            wake.notified().await;
        }
    }
}

/// Renews a task's lease every third of its length until aborted, so that other servers
/// leave the task alone while this one works on it, however long an LLM takes.
async fn renew_while_working(
    store: Arc<dyn MemoryStore>,
    task_id: String,
    owner: String,
    lease_ms: u64,
) {
    let every = std::time::Duration::from_millis((lease_ms / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        let lease = Lease {
            owner: owner.clone(),
            until: now_millis() + lease_ms as Millis,
        };
        match store.renew_task(&task_id, &lease).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => tracing::warn!(task = %task_id, error = %e, "could not renew a task lease"),
        }
    }
}

/// Every half lease, takes over the tasks of servers that stopped renewing theirs.
async fn task_claimer(svc: Weak<MemoryService>) {
    loop {
        let every = match svc.upgrade() {
            Some(s) => std::time::Duration::from_millis((s.config.store.task_lease_ms / 2).max(1)),
            None => break,
        };
        tokio::time::sleep(every).await;
        let Some(svc) = svc.upgrade() else { break };
        match svc.claim_orphaned_tasks().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                tasks = n,
                "took over add tasks another worker stopped renewing"
            ),
            Err(e) => tracing::warn!(error = %e, "could not claim orphaned tasks"),
        }
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
    use super::*;
    use crate::store::tests_support::{memory, message};

    async fn wait_completed(svc: &MemoryService, task_id: &str) -> Task {
        for _ in 0..200 {
            let t = svc.task("p", task_id).await.unwrap();
            if t.status != TaskStatus::Running {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("task {task_id} never finished");
    }

    async fn start_lexical(store: Arc<dyn MemoryStore>) -> Arc<MemoryService> {
        MemoryService::start(store, None, None, Config::default())
            .await
            .unwrap()
    }

    fn lexical(query: &str) -> SearchInput {
        SearchInput {
            user_id: "u".into(),
            query: query.into(),
            ..Default::default()
        }
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
        let svc = start_lexical(store).await;
        let t = wait_completed(&svc, "t").await;
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.memory_ids.len(), 2, "the turn and the fact it states");
        let hits = svc.search("p", lexical("bees")).await.unwrap();
        assert!(t.memory_ids.contains(&hits[0].memory.id));
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
        let svc = start_lexical(store.clone()).await;
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
        let hits = svc.search("p", lexical("bees")).await.unwrap();
        assert_eq!(hits.len(), 1, "the startup sync indexed the memory");
    }

    #[tokio::test]
    async fn a_stale_index_is_rebuilt_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.store.data_dir = dir.path().to_path_buf();
        cfg.embed.model_dir = Default::default();
        {
            let svc = MemoryService::open(cfg.clone()).await.unwrap();
            svc.add("p", add_input("u", &["The cat is called Miso."], &[]))
                .await
                .unwrap();
        }
        // Lose the index entirely, as if the crash hit before its first commit.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        std::fs::remove_dir_all(dir.path().join("index")).unwrap();
        let svc = MemoryService::open(cfg).await.unwrap();
        let hits = svc.search("p", lexical("cat Miso")).await.unwrap();
        assert_eq!(hits.len(), 1);
    }

    fn add_input(user: &str, texts: &[&str], tags: &[&str]) -> AddInput {
        AddInput {
            user_id: user.into(),
            conversation_id: "c".into(),
            messages: texts
                .iter()
                .map(|t| NewMessage {
                    role: Role::User,
                    content: t.to_string(),
                    chat_time: None,
                    name: None,
                    message_id: None,
                })
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            info: Map::new(),
            agent_id: None,
            app_id: None,
            async_mode: false,
        }
    }

    fn said_at(user: &str, text: &str, at: &str) -> AddInput {
        let mut input = add_input(user, &[text], &[]);
        input.messages[0].chat_time = crate::time::parse_str(at);
        input
    }

    #[tokio::test]
    async fn a_date_in_the_query_favours_memories_from_then() {
        let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
        let old = svc
            .add(
                "p",
                said_at("u", "Dinner at the Thai place.", "2023-03-02T19:00:00Z"),
            )
            .await
            .unwrap();
        let recent = svc
            .add(
                "p",
                said_at(
                    "u",
                    "Dinner at the new Thai place downtown, great curry.",
                    "2023-05-03T19:00:00Z",
                ),
            )
            .await
            .unwrap();
        // Monday 2023-05-08: "last week" is May 1-7.
        let asked = |q: &str| SearchInput {
            query_time: crate::time::parse_str("2023-05-08T09:00:00Z"),
            ..lexical(q)
        };
        let hits = svc
            .search("p", asked("dinner at the Thai place"))
            .await
            .unwrap();
        assert_eq!(
            hits[0].memory.id, old.memory_ids[0],
            "the closer wording wins without a date"
        );
        let hits = svc
            .search("p", asked("dinner at the Thai place last week"))
            .await
            .unwrap();
        assert_eq!(hits[0].memory.id, recent.memory_ids[0]);
        let hits = svc
            .search("p", asked("Thai dinner in March"))
            .await
            .unwrap();
        assert_eq!(hits[0].memory.id, old.memory_ids[0]);
        let hits = svc
            .search("p", asked("上周的泰国菜 dinner Thai"))
            .await
            .unwrap();
        assert_eq!(hits[0].memory.id, recent.memory_ids[0], "Chinese dates too");
    }

    #[tokio::test]
    async fn near_copies_make_room_for_other_results() {
        for svc in [
            start_lexical(Arc::new(InMemoryStore::new())).await,
            fake_service(Arc::new(InMemoryStore::new())).await,
        ] {
            let text = "Bees on the roof make honey for the market.";
            let a = svc.add("p", add_input("u", &[text], &[])).await.unwrap();
            let b = svc.add("p", add_input("u", &[text], &[])).await.unwrap();
            let other = svc
                .add("p", add_input("u", &["The neighbour keeps bees too."], &[]))
                .await
                .unwrap();
            svc.embed_pending().await.unwrap();
            let ids = |hits: Vec<SearchHit>| -> Vec<String> {
                hits.into_iter().map(|h| h.memory.id).collect()
            };
            let input = |limit| SearchInput {
                limit: Some(limit),
                ..lexical("bees on the roof honey")
            };
            let top = ids(svc.search("p", input(2)).await.unwrap());
            assert_eq!(top.len(), 2);
            assert!(top[0] == a.memory_ids[0] || top[0] == b.memory_ids[0]);
            assert_eq!(top[1], other.memory_ids[0], "the copy steps aside");
            // With room for all, the copy still comes back, last.
            let all = ids(svc.search("p", input(3)).await.unwrap());
            assert_eq!(all.len(), 3);
            assert_eq!(all[1], other.memory_ids[0]);
        }
    }

    #[test]
    fn feedback_loses_its_correction_words_only() {
        assert_eq!(
            strip_correction("No, that's wrong: I'm vegetarian now."),
            "I'm vegetarian now."
        );
        assert_eq!(strip_correction("不对，我现在吃素。"), "我现在吃素。");
        assert_eq!(
            strip_correction("Nobody told you I moved?"),
            "Nobody told you I moved?"
        );
        assert_eq!(
            strip_correction("Actually I live in Lyon."),
            "I live in Lyon."
        );
    }

    #[tokio::test]
    async fn a_repeated_fact_merges_into_the_first_and_keeps_its_id() {
        let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
        let first = svc
            .add(
                "p",
                said_at("u", "I love spicy food.", "2023-05-01T10:00:00Z"),
            )
            .await
            .unwrap();
        let again = svc
            .add(
                "p",
                said_at(
                    "u",
                    "Honestly, I really love spicy food!",
                    "2023-05-08T10:00:00Z",
                ),
            )
            .await
            .unwrap();
        // [turn, fact] each time; the second fact is the first one, merged.
        assert_eq!(first.memory_ids.len(), 2);
        assert_eq!(again.memory_ids.len(), 2);
        assert_eq!(again.memory_ids[1], first.memory_ids[1]);
        let (fact, history) = svc
            .history("p", Some("u"), &first.memory_ids[1])
            .await
            .unwrap();
        assert_eq!(fact.sources.len(), 2, "sources grow");
        assert!(fact.update_time >= fact.create_time);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kind, ChangeKind::Merged);
        let profile = svc.profile("p", "u").await.unwrap();
        assert_eq!(profile.len(), 1);
        assert_eq!(profile[0].1.len(), 1, "one fact, not two");
    }

    #[tokio::test]
    async fn a_change_archives_the_old_fact_and_time_travel_still_finds_it() {
        let svc = start_lexical(Arc::new(InMemoryStore::new())).await;
        let before = svc
            .add(
                "p",
                said_at("u", "I live in Beijing.", "2020-01-01T00:00:00Z"),
            )
            .await
            .unwrap();
        let after = svc
            .add(
                "p",
                said_at(
                    "u",
                    "I moved from Beijing to Shanghai.",
                    "2024-01-01T00:00:00Z",
                ),
            )
            .await
            .unwrap();
        let (old_id, new_id) = (&before.memory_ids[1], &after.memory_ids[1]);
        let (old, history) = svc.history("p", Some("u"), old_id).await.unwrap();
        assert_eq!(
            old.status,
            MemoryStatus::Archived,
            "archived, never deleted"
        );
        assert_eq!(history[0].kind, ChangeKind::Superseded);
        assert_eq!(history[0].related_id.as_ref(), Some(new_id));
        assert_eq!(history[0].before.as_deref(), Some(old.value.as_str()));
        let (_, history) = svc.history("p", Some("u"), new_id).await.unwrap();
        assert_eq!(history[0].kind, ChangeKind::Supersedes);
        assert_eq!(history[0].related_id.as_ref(), Some(old_id));

        let profile_hits = |hits: Vec<SearchHit>| -> Vec<String> {
            hits.into_iter()
                .filter(|h| h.memory.memory_type == MemoryType::UserMemory)
                .map(|h| h.memory.id)
                .collect()
        };
        let now = svc
            .search("p", lexical("where does the user live Beijing Shanghai"))
            .await
            .unwrap();
        assert_eq!(profile_hits(now), vec![new_id.clone()]);
        let then = svc
            .search(
                "p",
                SearchInput {
                    query_time: crate::time::parse_str("2022-06-01"),
                    ..lexical("where does the user live Beijing Shanghai")
                },
            )
            .await
            .unwrap();
        assert_eq!(profile_hits(then), vec![old_id.clone()]);
    }

    async fn fake_service(store: Arc<dyn MemoryStore>) -> Arc<MemoryService> {
        let embedder: Arc<dyn Embedder> = Arc::new(crate::embed::FakeEmbedder::new(64));
        MemoryService::start(store, None, Some(embedder), Config::default())
            .await
            .unwrap()
    }

    /// After start, the background embedder looks only at what this service wrote: a
    /// memory that appears in the store some other way waits for the next full pass
    /// (`embed_pending`, or a restart), and the store is never walked for a few new rows.
    #[tokio::test]
    async fn the_background_embedder_embeds_what_this_service_wrote() {
        let store = Arc::new(InMemoryStore::new());
        let svc = fake_service(store.clone()).await;
        // Let the start-up pass over the whole store finish first.
        svc.embed_pending().await.unwrap();
        let foreign = memory("u", "c", "written by another server");
        store
            .write(WriteBatch {
                upsert_memories: vec![foreign.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
        let mine = svc
            .add("p", add_input("u", &["green tea in the morning"], &[]))
            .await
            .unwrap()
            .memory_ids;
        let lacking = |ids: Vec<String>| {
            let store = store.clone();
            async move {
                store
                    .lacking_embeddings("p", &ids, "fake-hashed-bow")
                    .await
                    .unwrap()
                    .len()
            }
        };
        for _ in 0..500 {
            if lacking(mine.clone()).await == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(lacking(mine).await, 0, "the add's memories got vectors");
        assert_eq!(lacking(vec![foreign.id.clone()]).await, 1);
        assert_eq!(svc.embed_pending().await.unwrap(), 1);
        assert_eq!(lacking(vec![foreign.id.clone()]).await, 0);
    }

    /// Counts query embeddings, and makes each slow enough for searches to overlap.
    #[derive(Debug)]
    struct SlowCounting {
        inner: crate::embed::FakeEmbedder,
        queries: std::sync::atomic::AtomicUsize,
    }

    impl Embedder for SlowCounting {
        fn model_id(&self) -> &str {
            self.inner.model_id()
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.inner.embed_documents(texts)
        }
        fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
            self.queries
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.inner.embed_query(text)
        }
        fn calibrate(&self, cosine: f32) -> f32 {
            self.inner.calibrate(cosine)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_searches_for_one_query_embed_it_once() {
        let embedder = Arc::new(SlowCounting {
            inner: crate::embed::FakeEmbedder::new(64),
            queries: Default::default(),
        });
        let store = Arc::new(InMemoryStore::new());
        let svc = MemoryService::start(store, None, Some(embedder.clone()), Config::default())
            .await
            .unwrap();
        svc.add(
            "p",
            add_input("u", &["I prefer green tea in the morning"], &[]),
        )
        .await
        .unwrap();
        let input = SearchInput {
            mode: SearchMode::Hybrid,
            ..dense("what does the user drink")
        };
        let count = || embedder.queries.load(std::sync::atomic::Ordering::SeqCst);
        let (hits, prefs) = tokio::join!(
            svc.search("p", input.clone()),
            svc.search_preferences("p", &input, 5)
        );
        assert!(!hits.unwrap().is_empty());
        assert_eq!(prefs.unwrap().len(), 1, "the stated preference");
        assert_eq!(
            count(),
            1,
            "the second search waited for the first one's vector"
        );
        svc.search("p", input).await.unwrap();
        assert_eq!(count(), 1, "and later searches find it cached");
        svc.search("p", dense("something else")).await.unwrap();
        assert_eq!(count(), 2);
    }

    fn dense(query: &str) -> SearchInput {
        SearchInput {
            user_id: "u".into(),
            query: query.into(),
            mode: SearchMode::Dense,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn vectors_follow_adds_in_the_background_and_skip_deleted_memories() {
        let store = Arc::new(InMemoryStore::new());
        let svc = fake_service(store.clone()).await;
        let kept = svc
            .add("p", add_input("u", &["green tea in the morning"], &[]))
            .await
            .unwrap();
        // Lexically searchable as soon as the add returns, vectors or not.
        assert_eq!(
            svc.search("p", lexical("green tea")).await.unwrap().len(),
            1
        );
        // A memory deleted before its vector lands gets none, and no orphan row.
        let gone = svc
            .add("p", add_input("u", &["black coffee at night"], &[]))
            .await
            .unwrap();
        let vector = svc
            .embed_memories(&store.get_memories("p", &gone.memory_ids).await.unwrap())
            .await
            .unwrap();
        let stale = store.get_memories("p", &gone.memory_ids).await.unwrap();
        svc.delete("p", Some("u"), &gone.memory_ids, false)
            .await
            .unwrap();
        assert_eq!(svc.commit_embeddings(&stale, vector).await.unwrap(), 0);
        svc.embed_pending().await.unwrap();
        let scope = Scope::new("p", "u");
        let stored = store.embeddings(&scope, "fake-hashed-bow").await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, kept.memory_ids[0]);
        let hits = svc.search("p", dense("green tea")).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].memory.id, kept.memory_ids[0]);
    }

    #[tokio::test]
    async fn dense_search_applies_filters_deletes_and_time_inside() {
        dense_search_applies_filters_deletes_and_time_inside_of(Arc::new(InMemoryStore::new()))
            .await;
    }

    /// The same over PostgreSQL, where the database runs the search (HNSW, SQL filters).
    #[tokio::test]
    async fn dense_search_in_postgres_applies_filters_deletes_and_time_inside() {
        let Some(url) = crate::store::tests_support::postgres_schema_url().await else {
            return;
        };
        let store = PostgresStore::connect(&url, 4).await.unwrap();
        dense_search_applies_filters_deletes_and_time_inside_of(Arc::new(store)).await;
    }

    async fn dense_search_applies_filters_deletes_and_time_inside_of(store: Arc<dyn MemoryStore>) {
        let svc = fake_service(store).await;
        let a = svc
            .add(
                "p",
                add_input("u", &["green tea in the morning"], &["drinks"]),
            )
            .await
            .unwrap();
        svc.add("p", add_input("u", &["green tea with lunch"], &["food"]))
            .await
            .unwrap();
        svc.add(
            "p",
            add_input("other", &["green tea for someone else"], &[]),
        )
        .await
        .unwrap();
        svc.embed_pending().await.unwrap();
        let hits = svc.search("p", dense("green tea")).await.unwrap();
        assert_eq!(hits.len(), 2, "only the user's own memories");
        let filter =
            Filter::parse(&serde_json::json!({"and": [{"tags": {"contains": "drinks"}}]})).unwrap();
        let hits = svc
            .search(
                "p",
                SearchInput {
                    filter,
                    ..dense("green tea")
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].memory.id, a.memory_ids[0]);
        let hits = svc
            .search(
                "p",
                SearchInput {
                    query_time: Some(1),
                    ..dense("green tea")
                },
            )
            .await
            .unwrap();
        assert!(hits.is_empty(), "nothing existed at t=1");
        svc.delete("p", None, &a.memory_ids, false).await.unwrap();
        let hits = svc.search("p", dense("green tea")).await.unwrap();
        assert_eq!(hits.len(), 1);
        svc.delete_user("p", "u").await.unwrap();
        assert!(
            svc.search("p", dense("green tea"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn memories_stored_before_a_model_get_vectors_at_start() {
        let store: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::new());
        let lexical = start_lexical(store.clone()).await;
        lexical
            .add(
                "p",
                add_input("u", &["my bicycle is red", "the cat sleeps all day"], &[]),
            )
            .await
            .unwrap();
        drop(lexical);
        let svc = fake_service(store.clone()).await;
        for _ in 0..200 {
            if store
                .missing_embeddings("fake-hashed-bow", None, 10)
                .await
                .unwrap()
                .0
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let hits = svc.search("p", dense("red bicycle")).await.unwrap();
        assert!(hits[0].memory.value.contains("bicycle"), "{hits:?}");
    }

    #[test]
    fn embedding_text_drops_the_date() {
        let mut m = memory("u", "c", "x");
        m.value = "[2023-05-08] Caroline: I went home.".into();
        assert_eq!(embedding_text(&m), "Caroline: I went home.");
        m.value = "no date".into();
        assert_eq!(embedding_text(&m), "no date");
    }
}
