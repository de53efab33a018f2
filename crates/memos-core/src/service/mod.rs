//! [`MemoryService`]: the one facade the HTTP server and the CLI call. It validates input,
//! runs ingestion, keeps the store and the indexes in step, and answers searches.
//!
//! Every write goes through [`MemoryService::commit`]: the store write and the index
//! enqueue happen under one lock, so the index sees store revisions in order and its
//! recorded revision is always a prefix of the store's history.

mod add;
mod chat;
mod edit;
mod embedding;
mod extract;
mod input;
mod keys;
mod knowledge;
mod portability;
mod profiles;
mod read;
mod refine;
mod rerank;
mod retrieval;
mod search;
mod tasks;
#[cfg(test)]
mod tests;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, Notify, mpsc};

use crate::config::{Config, StoreBackend};
use crate::embed::Embedder;
use crate::error::Result;
use crate::ingest::llm::LlmExtractor;
use crate::model::*;
use crate::search::bm25::Bm25Index;
use crate::store::{EmbeddedStore, InMemoryStore, MemoryStore, PostgresStore};

use embedding::{QueryVector, VectorQueue, embed_worker, load_embedder, query_cache};
use retrieval::Retrieval;
use tasks::{task_claimer, task_worker};

pub use chat::{ChatAnswer, ChatEvent, ChatInput, ChatStream};
pub use extract::Extracted;
pub use input::{
    AddInput, AddOutcome, Explain, FeedbackInput, ListInput, MAX_DELETE_IDS, MAX_MESSAGE_LIMIT,
    MAX_PAGE_SIZE, NewMessage, SearchHit, SearchInput, SearchMode, Signal, UpdateInput,
};
pub use knowledge::{
    FileSelect, FileStatus, KNOWLEDGE_TAG, KbFile, KbSelect, KnowledgeBase, MAX_CALL_BYTES,
    MAX_FILE_BYTES, MAX_FILES_PER_CALL, NewFile, PUBLIC_KB, merge_hits,
};
pub use portability::{EXPORT_FORMAT, ExportCounts, ExportHeader, ExportRecord, export_user};
pub use profiles::{MAX_BINDINGS, Profile, ProfileTemplate};
pub use rerank::{MAX_RERANK_DOCUMENTS, Reranked};

/// The memory service.
pub struct MemoryService {
    store: Arc<dyn MemoryStore>,
    /// LLM calls and tokens by project and job, for `/metrics`.
    ledger: Arc<crate::llm_usage::Ledger>,
    /// Where search candidates come from, decided at start.
    retrieval: Retrieval,
    embedder: Option<Arc<dyn Embedder>>,
    /// Query vectors by query text. A cell is inserted before the embedding starts, so
    /// concurrent searches for the same text (a search and its preference search) share one.
    /// Within its share of `search.cache_mb` ([`query_cache`]).
    query_cache: moka::sync::Cache<String, QueryVector>,
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
    /// The fine path, when `llm.base_url` is set and `llm.refine` on.
    llm: Option<Arc<LlmExtractor>>,
    /// The model `chat` answers with, when `llm.base_url` is set.
    chat_model: Option<crate::chat::ChatModel>,
    /// This service's name on the task leases it holds; new at every start.
    worker_id: String,
    /// Transient failures per task so far, for [`tasks`]' retries.
    task_failures: std::sync::Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for MemoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryService")
            .field("index", &self.retrieval.index_path())
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
        let (store, index): (Arc<dyn MemoryStore>, Option<Bm25Index>) = match config.store.backend {
            StoreBackend::Memory => (Arc::new(InMemoryStore::new()), None),
            // Searches run in the database, where every server sees every write.
            StoreBackend::Postgres => (
                Arc::new(
                    PostgresStore::connect(&config.store.url, config.store.max_connections)
                        .await?
                        .with_index_memory_mb(config.store.vector_index_memory_mb)
                        .with_replicas(
                            &config.store.replica_urls,
                            config.store.max_connections,
                            std::time::Duration::from_millis(config.store.replica_wait_ms),
                        )?,
                ),
                None,
            ),
            StoreBackend::Embedded => {
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
        let model = embedder.as_ref().map(|e| (e.model_id(), e.dim()));
        let copies = crate::store::SearchCopies {
            bytes: embedding::cache_budgets(&config).0,
            exact_scan_rows: config.search.exact_scan_rows,
        };
        let retrieval = Retrieval::open(&store, index, model, copies).await?;
        let ledger = Arc::new(crate::llm_usage::Ledger::default());
        let llm = if config.llm.base_url.is_empty() || !config.llm.refine {
            None
        } else {
            Some(Arc::new(LlmExtractor::new(
                config.llm.clone(),
                ledger.clone(),
            )?))
        };
        let chat_model = crate::chat::ChatModel::new(&config.llm, ledger.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let svc = Arc::new(Self {
            chat_model,
            ledger,
            store,
            retrieval,
            embedder,
            query_cache: query_cache(&config),
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
            task_failures: Default::default(),
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

    /// The store underneath, for tests and tools that check what was written; the HTTP
    /// layer and the CLI go through the facade's own calls.
    pub fn store(&self) -> &dyn MemoryStore {
        self.store.as_ref()
    }

    /// LLM calls and tokens so far, by project and job (fine-path extraction, profiles,
    /// chat).
    pub fn llm_usage(&self) -> Vec<(String, crate::llm_usage::Job, crate::llm_usage::Tokens)> {
        self.ledger.snapshot()
    }

    /// What the search caches hold now, in bytes: the users' vectors (`None` when the store
    /// searches itself) and the query vectors; together within `search.cache_mb`.
    pub fn cache_bytes(&self) -> (Option<u64>, u64) {
        self.query_cache.run_pending_tasks();
        (
            self.retrieval.vector_bytes(),
            self.query_cache.weighted_size(),
        )
    }

    /// Whether this server can serve now: its store answers. (The model is loaded and the
    /// index in step with the store before the server listens at all.)
    pub async fn ready(&self) -> Result<()> {
        self.store.revision().await.map(drop)
    }

    /// How many store writes the local lexical index has not committed yet (`None` when the
    /// store searches itself): the operator's "index commit lag".
    pub async fn index_lag(&self) -> Result<Option<u64>> {
        let Some(indexed) = self.retrieval.indexed_revision() else {
            return Ok(None);
        };
        Ok(Some(self.store.revision().await?.saturating_sub(indexed)))
    }

    /// How the store's connection pool is used, when it has one (PostgreSQL).
    pub fn store_pool(&self) -> Option<crate::store::PoolUse> {
        self.store.pool_use()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The embedding model in use, if any.
    pub fn embedder(&self) -> Option<&dyn Embedder> {
        self.embedder.as_deref()
    }

    /// The LLM extractor, when one is configured.
    pub fn llm(&self) -> Option<&LlmExtractor> {
        self.llm.as_deref()
    }
}
