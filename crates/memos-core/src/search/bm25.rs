//! [`Bm25Index`]: the lexical retriever, a tantivy index over every memory.
//!
//! The index is derived data. Its commit payload records the store revision it reflects;
//! on start [`Bm25Index::sync_with`] compares that with the store and rebuilds when they
//! differ (after a crash between the store commit and the index commit, say), so a crash
//! never loses a searchable memory.
//!
//! Writes go to one writer thread that batches whatever is queued into a single commit
//! (group commit): many concurrent adds cost one fsync and one reader reload, and each
//! caller is told when its documents are searchable.
//!
//! Filters are translated into tantivy clauses and run inside the search, so a filtered
//! search still returns `limit` results when that many match.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::filter::{Condition, Filter, Logic, TimeField};
use crate::model::{Memory, MemoryStatus, Millis, Scope};
use crate::search::{Candidate, TimeRange};
use crate::store::{MemoryStore, Revision};
use crate::text;

/// Bumped whenever the schema or the tokenizer changes, so old indexes get rebuilt.
const SCHEMA_VERSION: u32 = 1;
const TOKENIZER: &str = "memos";
const WRITER_HEAP: usize = 50_000_000;
/// Most jobs folded into one commit; bounds the latency of the first caller in a batch.
const MAX_GROUP: usize = 256;
const REBUILD_PAGE: usize = 2_000;

/// A change to the index.
#[derive(Debug, Clone)]
pub enum IndexOp {
    /// Index a memory, replacing any earlier version with the same id.
    Upsert(Box<Memory>),
    /// Remove a memory.
    Delete(String),
    /// Remove every memory of a scope.
    DeleteScope(Scope),
    /// Remove everything (the first step of a rebuild).
    Clear,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    scope: Field,
    text: Field,
    agent_id: Field,
    app_id: Field,
    tags: Field,
    info: Field,
    memory_type: Field,
    status: Field,
    create_time: Field,
    update_time: Field,
    memory_time: Field,
    /// `memory_time`, or `create_time` when there is none: what "as of" queries compare.
    effective_time: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let time = || NumericOptions::default() | INDEXED;
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        scope: b.add_text_field("scope", STRING),
        text: b.add_text_field("text", text_opts),
        agent_id: b.add_text_field("agent_id", STRING),
        app_id: b.add_text_field("app_id", STRING),
        tags: b.add_text_field("tags", STRING),
        info: b.add_text_field("info", STRING),
        memory_type: b.add_text_field("memory_type", STRING),
        status: b.add_text_field("status", STRING),
        create_time: b.add_i64_field("create_time", time()),
        update_time: b.add_i64_field("update_time", time()),
        memory_time: b.add_i64_field("memory_time", time()),
        effective_time: b.add_i64_field("effective_time", time()),
    };
    (b.build(), fields)
}

fn info_term(key: &str, value: &str) -> String {
    format!("{key}\u{1f}{value}")
}

/// The tantivy face of [`text::terms`], so the index and the query see the same terms.
#[derive(Clone, Default)]
struct MemosTokenizer;

struct VecTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for MemosTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let tokens = text::terms(text)
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                position,
                text,
                position_length: 1,
                ..Token::default()
            })
            .collect();
        VecTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

struct Job {
    ops: Vec<IndexOp>,
    revision: Revision,
    done: Option<oneshot::Sender<Result<()>>>,
}

/// The BM25 index. Cheap to clone; clones share the index and its writer thread.
#[derive(Clone)]
pub struct Bm25Index {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    jobs: std::sync::Mutex<mpsc::Sender<Job>>,
    path: Option<PathBuf>,
}

/// What the index payload holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    schema: u32,
    revision: Revision,
}

impl Bm25Index {
    /// Opens the index in `dir`, or creates it; `None` keeps it in RAM (tests, in-memory store).
    /// An index written by another schema version is discarded (it is rebuilt by
    /// [`Self::sync_with`]).
    pub fn open(dir: Option<&Path>) -> Result<Self> {
        let (schema, fields) = schema();
        let index = match dir {
            None => Index::create_in_ram(schema.clone()),
            Some(dir) => {
                let usable = dir.join("meta.json").exists()
                    && Index::open_in_dir(dir).ok().is_some_and(|i| {
                        i.schema() == schema
                            && read_payload(&i).is_some_and(|p| p.schema == SCHEMA_VERSION)
                    });
                if !usable && dir.exists() {
                    tracing::warn!(path = %dir.display(), "discarding an index of another format; it will be rebuilt");
                    std::fs::remove_dir_all(dir).map_err(Error::index)?;
                }
                std::fs::create_dir_all(dir).map_err(Error::index)?;
                if usable {
                    Index::open_in_dir(dir)?
                } else {
                    Index::create_in_dir(dir, schema.clone())?
                }
            }
        };
        index.tokenizers().register(TOKENIZER, MemosTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let mut writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_HEAP)
            .map_err(|e| {
                use tantivy::directory::error::LockError;
                if let tantivy::TantivyError::LockFailure(LockError::LockBusy, _) = &e {
                    // Said plainly: the usual cause is a second server on the data directory.
                    Error::Unavailable(format!(
                        "the index in {} is locked: another memos process holds this data directory",
                        dir.map_or_else(|| "memory".into(), |d| d.display().to_string())
                    ))
                } else {
                    e.into()
                }
            })?;
        if read_payload(&index).is_none() {
            // Stamp a new index with its format at once, so the next open keeps it.
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(
                &serde_json::to_string(&Payload {
                    schema: SCHEMA_VERSION,
                    revision: 0,
                })
                .expect("json"),
            );
            commit.commit()?;
        }
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            index,
            reader,
            fields,
            jobs: std::sync::Mutex::new(tx),
            path: dir.map(Path::to_path_buf),
        });
        // The thread holds clones of the index and reader, not `inner`: it ends when the last
        // handle drops the job sender, releasing tantivy's writer lock.
        let (index, reader) = (inner.index.clone(), inner.reader.clone());
        std::thread::Builder::new()
            .name("memos-index-writer".into())
            .spawn(move || writer_loop(&index, &reader, fields, writer, rx))
            .map_err(Error::index)?;
        Ok(Self { inner })
    }

    /// The store revision the last commit reflects (0 for a new index).
    pub fn revision(&self) -> Revision {
        read_payload(&self.inner.index).map_or(0, |p| p.revision)
    }

    /// Makes the index reflect the store: a no-op when the revisions agree, a full rebuild
    /// otherwise. Call before serving, while nothing else writes.
    pub async fn sync_with(&self, store: &dyn MemoryStore) -> Result<()> {
        let want = store.revision().await?;
        let have = self.revision();
        if want == have {
            return Ok(());
        }
        tracing::info!(
            index = have,
            store = want,
            "search index is stale; rebuilding it from the store"
        );
        let started = std::time::Instant::now();
        let mut cursor = None;
        let mut count = 0usize;
        // Intermediate commits keep the old revision, so a crash mid-rebuild rebuilds again.
        self.apply(vec![IndexOp::Clear], 0).await?;
        loop {
            let (page, next) = store.scan_memories(cursor, REBUILD_PAGE).await?;
            if page.is_empty() {
                break;
            }
            count += page.len();
            self.apply(
                page.into_iter()
                    .map(|m| IndexOp::Upsert(Box::new(m)))
                    .collect(),
                0,
            )
            .await?;
            cursor = next;
        }
        self.apply(vec![], want).await?;
        tracing::info!(
            memories = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index rebuilt"
        );
        Ok(())
    }

    /// Applies changes and waits until they are committed and searchable. `revision` is the
    /// store revision they bring the index to; 0 leaves the recorded revision as it is.
    pub async fn apply(&self, ops: Vec<IndexOp>, revision: Revision) -> Result<()> {
        self.enqueue(ops, revision)?
            .await
            .map_err(|_| Error::Unavailable("index writer stopped".into()))?
    }

    /// Queues changes without waiting; the receiver reports when they are searchable.
    /// Callers that write the store under a lock enqueue under the same lock, so the index
    /// sees revisions in order.
    pub fn enqueue(
        &self,
        ops: Vec<IndexOp>,
        revision: Revision,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let (done, wait) = oneshot::channel();
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Job {
                ops,
                revision,
                done: Some(done),
            })
            .map_err(|_| Error::Unavailable("index writer stopped".into()))?;
        Ok(wait)
    }

    /// The best `limit` memories of `scope` for `query`, with filters applied inside the
    /// search. Archived memories are left out, and so are memories outside `time`.
    pub fn search(
        &self,
        scope: &Scope,
        query: &str,
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let f = &self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let terms = crate::search::query_terms(query);
        if terms.is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        let term_objs: Vec<Term> = terms
            .iter()
            .map(|t| Term::from_field_text(f.text, t))
            .collect();
        let text_query = BooleanQuery::new(
            term_objs
                .iter()
                .map(|t| {
                    let q: Box<dyn Query> =
                        Box::new(TermQuery::new(t.clone(), IndexRecordOption::WithFreqs));
                    (Occur::Should, q)
                })
                .collect(),
        );
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(text_query)),
            (Occur::Must, silent(term_query(f.scope, &scope.key()))),
            (Occur::Must, silent(self.current_at(time.to))),
        ];
        if !time.is_all() {
            clauses.push((
                Occur::Must,
                silent(range(f.effective_time, time.from, time.to)),
            ));
        }
        if let Some(filter) = filter {
            clauses.push((Occur::Must, silent(self.filter_query(filter))));
        }
        let query = BooleanQuery::new(clauses);
        let hits = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let idf_sum = idf_sum(&searcher, &term_objs)?;
        hits.into_iter()
            .map(|(score, addr)| {
                Ok(Candidate::lexical(
                    self.doc_id(&searcher, addr)?,
                    score,
                    idf_sum,
                ))
            })
            .collect()
    }

    /// Memories current at `t` ([`super::current_at`] as a query): active ones, plus those
    /// archived (superseded) after `t`, which were still current then. Without `t`, active
    /// ones only.
    fn current_at(&self, t: Option<Millis>) -> Box<dyn Query> {
        let f = &self.inner.fields;
        let active = term_query(f.status, MemoryStatus::Activated.as_str());
        let Some(t) = t else { return active };
        let archived_later: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (
                Occur::Must,
                term_query(f.status, MemoryStatus::Archived.as_str()),
            ),
            (
                Occur::Must,
                range(f.update_time, Some(t.saturating_add(1)), None),
            ),
        ]));
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, active),
            (Occur::Should, archived_later),
        ]))
    }

    /// Ids of every active memory of `scope` that passes `filter` (and `time`): the
    /// allow-list that makes the dense retriever apply filters inside its search too.
    pub fn matching_ids(
        &self,
        scope: &Scope,
        filter: &Filter,
        time: TimeRange,
    ) -> Result<HashSet<String>> {
        let f = &self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, term_query(f.scope, &scope.key())),
            (
                Occur::Must,
                term_query(f.status, MemoryStatus::Activated.as_str()),
            ),
            (Occur::Must, self.filter_query(filter)),
        ];
        if !time.is_all() {
            clauses.push((Occur::Must, range(f.effective_time, time.from, time.to)));
        }
        let docs = searcher.search(
            &BooleanQuery::new(clauses),
            &tantivy::collector::DocSetCollector,
        )?;
        docs.into_iter()
            .map(|addr| self.doc_id(&searcher, addr))
            .collect()
    }

    fn doc_id(&self, searcher: &Searcher, addr: DocAddress) -> Result<String> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        doc.get_first(self.inner.fields.id)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Index(Arc::new(std::io::Error::other(
                    "indexed document without id",
                )))
            })
    }

    fn filter_query(&self, filter: &Filter) -> Box<dyn Query> {
        let f = &self.inner.fields;
        let occur = if filter.logic == Logic::And {
            Occur::Must
        } else {
            Occur::Should
        };
        let clauses = filter
            .conditions
            .iter()
            .map(|c| {
                let q: Box<dyn Query> = match c {
                    Condition::AgentId(a) => term_query(f.agent_id, a),
                    Condition::AppId(a) => term_query(f.app_id, a),
                    Condition::TagContains(t) => term_query(f.tags, t),
                    Condition::MemoryType(t) => term_query(f.memory_type, t.as_str()),
                    Condition::Info { key, value } => term_query(f.info, &info_term(key, value)),
                    Condition::Time { field, min, max } => {
                        let field = match field {
                            TimeField::CreateTime => f.create_time,
                            TimeField::UpdateTime => f.update_time,
                            TimeField::MemoryTime => f.memory_time,
                        };
                        range(field, *min, *max)
                    }
                };
                (occur, q)
            })
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    /// Where the index lives on disk, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

/// A clause that restricts without scoring, so filters never change BM25 scores.
fn silent(q: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(q, 0.0))
}

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn range(field: Field, min: Option<Millis>, max: Option<Millis>) -> Box<dyn Query> {
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Box::new(EmptyQuery);
    }
    let bound = |v: Option<Millis>| {
        v.map_or(Bound::Unbounded, |v| {
            Bound::Included(Term::from_field_i64(field, v))
        })
    };
    Box::new(RangeQuery::new(bound(min), bound(max)))
}

/// Σ idf over the query terms, with tantivy's own formula and statistics. A document that
/// holds every term once at average length scores exactly this, so `score / idf_sum` reads
/// as "how much of the query the memory covers", comparable from query to query.
fn idf_sum(searcher: &Searcher, terms: &[Term]) -> Result<f32> {
    let n: u64 = searcher
        .segment_readers()
        .iter()
        .map(|s| u64::from(s.max_doc()))
        .sum();
    let mut sum = 0.0f32;
    for t in terms {
        let df = searcher.doc_freq(t)?.min(n);
        let x = ((n - df) as f32 + 0.5) / (df as f32 + 0.5);
        sum += (1.0 + x).ln();
    }
    Ok(sum)
}

fn read_payload(index: &Index) -> Option<Payload> {
    index
        .load_metas()
        .ok()?
        .payload
        .and_then(|p| serde_json::from_str(&p).ok())
}

fn document(f: &Fields, m: &Memory) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_text(f.id, &m.id);
    d.add_text(f.scope, m.scope.key());
    d.add_text(f.text, m.index_text());
    if let Some(a) = &m.agent_id {
        d.add_text(f.agent_id, a);
    }
    if let Some(a) = &m.app_id {
        d.add_text(f.app_id, a);
    }
    for t in &m.tags {
        d.add_text(f.tags, t.to_lowercase());
    }
    for (k, v) in &m.info {
        if let Some(v) = crate::filter::canonical_info_value(v) {
            d.add_text(f.info, info_term(k, &v));
        }
    }
    d.add_text(f.memory_type, m.memory_type.as_str());
    d.add_text(f.status, m.status.as_str());
    d.add_i64(f.create_time, m.create_time);
    d.add_i64(f.update_time, m.update_time);
    if let Some(t) = m.memory_time {
        d.add_i64(f.memory_time, t);
    }
    d.add_i64(f.effective_time, m.memory_time.unwrap_or(m.create_time));
    d
}

fn writer_loop(
    index: &Index,
    reader: &IndexReader,
    f: Fields,
    mut writer: IndexWriter,
    jobs: mpsc::Receiver<Job>,
) {
    // After a failed commit some changes are missing from the index. From then on the
    // recorded revision must stay behind the store's, so that the next start rebuilds.
    let mut poisoned = false;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = (|| -> Result<()> {
            let mut revision = None;
            for job in &batch {
                for op in &job.ops {
                    match op {
                        IndexOp::Upsert(m) => {
                            writer.delete_term(Term::from_field_text(f.id, &m.id));
                            writer.add_document(document(&f, m))?;
                        }
                        IndexOp::Delete(id) => {
                            writer.delete_term(Term::from_field_text(f.id, id));
                        }
                        IndexOp::Clear => {
                            writer.delete_all_documents()?;
                        }
                        IndexOp::DeleteScope(s) => {
                            writer.delete_term(Term::from_field_text(f.scope, &s.key()));
                        }
                    }
                }
                if job.revision > 0 {
                    revision = Some(revision.unwrap_or(0).max(job.revision));
                }
            }
            let mut commit = writer.prepare_commit()?;
            if let (Some(revision), false) = (revision, poisoned) {
                commit.set_payload(
                    &serde_json::to_string(&Payload {
                        schema: SCHEMA_VERSION,
                        revision,
                    })
                    .expect("json"),
                );
            } else if let Some(old) = read_payload(index) {
                commit.set_payload(&serde_json::to_string(&old).expect("json"));
            }
            commit.commit()?;
            reader.reload()?;
            Ok(())
        })();
        if let Err(e) = &result {
            tracing::error!(error = %e, "index commit failed; the index will be rebuilt on the next start");
            poisoned = true;
            // Drop what was staged so the next batch starts clean; the store still holds
            // the truth and a restart rebuilds the index.
            let _ = writer.rollback();
        }
        for job in batch {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
    }
}
