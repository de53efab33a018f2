//! Vectors: the embedding model, query vectors (cached and shared between concurrent
//! searches), and the backlog of memories stored without a vector with the background
//! worker that catches up on it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tokio::sync::Notify;

use crate::config::Config;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::ingest::facts::{self, Topic};
use crate::ingest::head::{Judged, PreferenceHead};
use crate::model::*;
use crate::search::vector::{UserVectors, VectorIndex, VectorOp};
use crate::store::{Embedding, WriteBatch};

use super::MemoryService;
use super::write::archived_at;

impl MemoryService {
    /// Forgets cached query vectors, so the next searches pay for their embeddings again
    /// (benchmarks measure cold queries).
    pub fn clear_query_cache(&self) {
        self.query_cache.invalidate_all();
    }

    /// The preference head's verdicts on the sentences in which the user states something
    /// about themself, for extraction ([`crate::ingest::head`]). None without a model, or
    /// with one the built-in head was not trained for, or when `[embed] preference_head`
    /// is off: the rules then work alone. `background`: for an add task, which no request
    /// waits on, so its sentences are embedded on the background thread.
    pub(super) async fn judge_sentences(
        &self,
        messages: &[Message],
        background: bool,
    ) -> Result<Judged> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(Judged::default());
        };
        let Some(head) = self
            .config
            .embed
            .preference_head
            .then(|| PreferenceHead::builtin(embedder.model_id()))
            .flatten()
        else {
            return Ok(Judged::default());
        };
        let facts: Vec<(String, String)> = messages
            .iter()
            .filter(|m| m.role == Role::User)
            .flat_map(|m| facts::user_facts(&m.content, m.chat_time, m.name.as_deref()))
            // A wish about the assistant is the directive rules' call alone.
            .filter(|f| f.topic != Topic::Assistant)
            .map(|f| {
                let text = crate::text::unprefixed(&f.value).to_string();
                (f.sentence, text)
            })
            .collect();
        if facts.is_empty() {
            return Ok(Judged::default());
        }
        let texts: Vec<String> = facts.iter().map(|(_, t)| t.clone()).collect();
        let vectors = embed_documents(embedder, texts, background)
            .await
            .and_then(|r| r);
        let vectors = match vectors {
            Ok(v) => v,
            // The head only refines what the rules found: an add never fails for it.
            Err(e) => {
                tracing::warn!(error = %e, "preference head skipped: the facts could not be embedded");
                return Ok(Judged::default());
            }
        };
        Ok(Judged::new(
            head,
            facts
                .into_iter()
                .zip(vectors)
                .map(|((sentence, text), v)| (sentence, text, v))
                .collect(),
        ))
    }

    /// Vectors to store with new memories: those the preference head already computed
    /// (`judged`, whatever the configuration), and the rest when the configuration wants
    /// them before the add returns; what lacks one is left to the background embedder,
    /// woken after the commit.
    pub(super) async fn inline_embeddings(
        &self,
        memories: &[Memory],
        judged: &Judged,
    ) -> Result<Vec<Embedding>> {
        let Some(embedder) = &self.embedder else {
            return Ok(vec![]);
        };
        let (known, rest): (Vec<&Memory>, Vec<&Memory>) = memories
            .iter()
            .partition(|m| judged.vector(&embedding_text(m)).is_some());
        let mut out: Vec<Embedding> = known
            .into_iter()
            .filter_map(|m| {
                Some(Embedding {
                    memory_id: m.id.clone(),
                    scope: m.scope.clone(),
                    model: embedder.model_id().to_string(),
                    vector: judged.vector(&embedding_text(m))?.to_vec(),
                })
            })
            .collect();
        if self.config.embed.inline {
            let rest: Vec<Memory> = rest.into_iter().cloned().collect();
            out.extend(self.embed_memories(&rest, false).await?);
        }
        Ok(out)
    }

    /// Vectors for memories, computed off the async executor: for a request that waits on
    /// them on the blocking pool, or for the `background` embedder on the background thread
    /// ([`background`]).
    pub(super) async fn embed_memories(
        &self,
        memories: &[Memory],
        background: bool,
    ) -> Result<Vec<Embedding>> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(vec![]);
        };
        if memories.is_empty() {
            return Ok(vec![]);
        }
        let model = embedder.model_id().to_string();
        let texts: Vec<String> = memories.iter().map(embedding_text).collect();
        let vectors = embed_documents(embedder, texts, background).await??;
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
    pub(super) async fn query_vector(
        &self,
        embedder: &Arc<dyn Embedder>,
        query: &str,
    ) -> Result<Arc<Vec<f32>>> {
        // One cell per text, made by whichever search asks first; the others share it.
        let cell = self
            .query_cache
            .get_with_by_ref(query, QueryVector::default);
        // A failed embedding leaves the cell empty: the next caller tries again.
        cell.get_or_try_init(|| async {
            let (e, q) = (embedder.clone(), query.to_string());
            let v = tokio::task::spawn_blocking(move || e.embed_query(&q))
                .await
                .map_err(worker_failed)??;
            Ok::<_, Error>(Arc::new(v))
        })
        .await
        .cloned()
    }

    /// A scope's vectors, loaded from the store on first use.
    pub(super) async fn user_vectors(
        &self,
        vectors: &VectorIndex,
        scope: &Scope,
        model: &str,
    ) -> Result<Arc<std::sync::RwLock<UserVectors>>> {
        if let Some(u) = vectors.get(scope) {
            return Ok(u);
        }
        // Under the write lock no write can land between the load and the install.
        let _order = self.write_lock.lock().await;
        if let Some(u) = vectors.get(scope) {
            return Ok(u);
        }
        let rows = self.store.embeddings(scope, model).await?;
        let big = rows.len() >= crate::search::vector::TRIM_AFTER_ROWS;
        let installed = vectors.install(scope.clone(), rows);
        if big {
            crate::search::vector::release_freed_memory();
        }
        Ok(installed)
    }

    /// Embeds every stored memory that has no vector under the current model: memories
    /// added since the last pass (adds do not wait for vectors unless `embed.inline`), and
    /// data from before the model was configured. Returns how many got one.
    ///
    /// Memories this process wrote that may still lack a vector, or `None` when a full
    /// pass over the store is due (how many lack one is then unknown until it runs).
    pub fn embedding_backlog(&self) -> Option<usize> {
        let q = self.vector_queue.lock().unwrap_or_else(|e| e.into_inner());
        (!q.full_pass).then_some(q.len)
    }

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
                let embeddings = self.embed_memories(&missing, true).await?;
                done += self.commit_embeddings(&missing, embeddings).await?;
            }
            Ok(done)
        }
        .await;
        self.after_pass(result)
    }

    /// Hands memories just written to the background embedder, which gives a vector to those
    /// that lack one.
    pub(super) fn queue_vectors(&self, written: Vec<(String, String)>) {
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
    pub(super) async fn embed_queued(&self) -> Result<usize> {
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
                    let embeddings = self.embed_memories(&lacking, true).await?;
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
    pub(super) fn after_pass(&self, result: Result<usize>) -> Result<usize> {
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
    pub(super) async fn commit_embeddings(
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
                if m.status != MemoryStatus::Deleted {
                    ops.push(VectorOp::Upsert {
                        scope: e.scope.clone(),
                        id: e.memory_id.clone(),
                        time: m.memory_time.unwrap_or(m.create_time),
                        archived_at: archived_at(m),
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
                    ops,
                )
                .await?,
            );
        }
        Ok(n)
    }
}

/// Texts embedded as documents: on the blocking pool for a request that waits on them, or
/// on the background thread for work no request waits on (an add task's sentences, the
/// memories waiting for a vector).
pub(super) async fn embed_documents(
    embedder: Arc<dyn Embedder>,
    texts: Vec<String>,
    background: bool,
) -> Result<Result<Vec<Vec<f32>>>> {
    let embed = move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed_documents(&refs)
    };
    if background {
        self::background(embed).await
    } else {
        tokio::task::spawn_blocking(embed)
            .await
            .map_err(worker_failed)
    }
}

/// The error of an embedding whose thread failed (panicked, or is gone) before answering.
fn worker_failed(e: impl std::fmt::Display) -> Error {
    Error::Embedding(format!("embedding worker failed: {e}"))
}

/// How much lower than the rest of the process the background thread runs (a nice value,
/// 0-19). Its work waits for no request, so the scheduler gives the cores to searches and
/// to requests first; it still gets about a tenth of a busy core, and all of an idle one.
/// It keeps taking turns with queries on the model as before (while searches run, one
/// memory a pass, then as long idle). Measured at 100k memories in one user, two servers
/// on PostgreSQL and four clients with 10% adds (async, as clients send them): at the
/// process's own priority 106 requests/s and a search p50 of 36 ms; here 150-155 requests/s
/// and 25 ms, and no vector was left waiting after the traffic.
const BACKGROUND_NICE: i32 = 10;

/// A job for the background thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on the background thread: one per process, started on first use at
/// [`BACKGROUND_NICE`] (an unprivileged thread cannot raise its priority again, so nothing
/// else ever runs there). Where the thread cannot start, on the blocking pool.
async fn background<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    static LANE: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let lane = LANE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("embed-background".into())
            .spawn(move || {
                lower_this_threads_priority(BACKGROUND_NICE);
                for job in rx {
                    // A panicking job drops its answer channel (its caller gets the error);
                    // the thread lives on for the next.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(lane) = lane else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(worker_failed);
    };
    let (done, answer) = tokio::sync::oneshot::channel();
    lane.send(Box::new(move || {
        let _ = done.send(work());
    }))
    .map_err(worker_failed)?;
    answer.await.map_err(worker_failed)
}

/// Raises the calling thread's nice value to `nice` (on Linux, per thread) unless it is
/// that high already (a process started under `nice`); elsewhere, or where it is refused,
/// the thread keeps its priority.
fn lower_this_threads_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let tid = unsafe { libc::gettid() } as libc::id_t;
        if unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) } >= nice {
            return;
        }
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
        if done != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the background thread keeps its priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Query vectors kept for repeated queries; the cache is cleared when it fills.
pub(super) const QUERY_CACHE_SHARE: u64 = 16;

/// What one cached query vector is counted as besides its text: 768 floats, a vector of
/// the larger models memos loads (e5-small's 384 take half).
const QUERY_VECTOR_BYTES: u32 = 4 * 768 + 64;

/// The byte budgets of `search.cache_mb`: (the users' vectors, the query vectors).
pub(super) fn cache_budgets(config: &crate::Config) -> (u64, u64) {
    let all = config.search.cache_mb.saturating_mul(1 << 20);
    let queries = all / QUERY_CACHE_SHARE;
    (all - queries, queries)
}

/// The query-vector cache, within its share of `search.cache_mb`.
pub(super) fn query_cache(config: &crate::Config) -> moka::sync::Cache<String, QueryVector> {
    moka::sync::Cache::builder()
        .max_capacity(cache_budgets(config).1)
        .weigher(|q: &String, _| {
            u32::try_from(q.len())
                .unwrap_or(u32::MAX)
                .saturating_add(QUERY_VECTOR_BYTES)
        })
        .build()
}

/// A query's vector, or the embedding under way that will fill it.
pub(super) type QueryVector = Arc<tokio::sync::OnceCell<Arc<Vec<f32>>>>;
/// Memories embedded per step when catching up on missing vectors.
pub(super) const EMBED_BATCH: usize = 256;

/// How often the embedder of a server on a shared database looks through every memory.
pub(super) const SHARED_FULL_PASS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Queued memory ids beyond which the embedder forgets them and searches the store instead.
pub(super) const VECTOR_QUEUE_MAX: usize = 100_000;

/// Memory ids by project, waiting for the background embedder.
#[derive(Debug, Default)]
pub(super) struct VectorQueue {
    pub(super) ids: HashMap<String, Vec<String>>,
    pub(super) len: usize,
    /// Set when ids were dropped (too many, or a pass failed): the next pass searches the
    /// whole store, as at start.
    pub(super) full_pass: bool,
}
/// What the embedding model reads of a memory: the text without the date prefix, which
/// only adds noise to a vector.
pub(super) fn embedding_text(m: &Memory) -> String {
    crate::text::unprefixed(&m.value).to_string()
}

/// Loads the configured embedding model, or explains why dense search is off.
pub(super) fn load_embedder(config: &Config) -> Result<Option<Arc<dyn Embedder>>> {
    let dir = &config.embed.model_dir;
    if dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    match crate::embed::load(dir, config.embed.precision) {
        Ok(e) => {
            // Loading builds each weight matrix twice (as stored, then in the layout the
            // encoder multiplies fastest) and frees the first copies: give those pages back.
            crate::search::vector::release_freed_memory();
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                model = e.model_id(),
                dim = e.dim(),
                precision = ?config.embed.precision,
                kernel = crate::embed::Kernel::best().name(),
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
pub(super) async fn embed_worker(svc: Weak<MemoryService>, wake: Arc<Notify>) {
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
        let shared = strong.retrieval.is_shared();
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

#[cfg(test)]
mod tests {
    /// Work handed to the background thread runs there, at the lower priority (on Linux),
    /// and a job that panics fails alone: its caller gets an error, and the next job runs.
    #[tokio::test]
    async fn the_background_thread_runs_low_and_outlives_a_panic() {
        let (name, nice) = super::background(|| {
            let name = std::thread::current().name().map(str::to_string);
            // SAFETY: reads the calling thread's own priority.
            #[cfg(target_os = "linux")]
            let nice =
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            #[cfg(not(target_os = "linux"))]
            let nice = super::BACKGROUND_NICE;
            (name, nice)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("embed-background"));
        assert!(nice >= super::BACKGROUND_NICE, "nice {nice}");
        let failed = super::background(|| -> u32 { panic!("a job that fails") }).await;
        assert!(failed.is_err());
        assert_eq!(super::background(|| 7).await.unwrap(), 7);
    }
}
