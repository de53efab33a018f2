//! Candidate retrieval, decided once at start ([`Retrieval`]): this process's own indexes
//! over a store only it writes, or the store's own search over data every server sees.
//! Every search and every write asks the one enum, never the store again.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::filter::Filter;
use crate::model::*;
use crate::search::bm25::{Bm25Index, IndexOp};
use crate::search::vector::{VectorIndex, VectorOp};
use crate::search::{Allowed, Candidate, TimeRange};
use crate::store::{MemoryStore, Revision, SearchCopies, StoreSearch};

use super::MemoryService;

/// Where candidates come from.
pub(super) enum Retrieval {
    /// Indexes in this process, kept in step with the store by the write path: tantivy for
    /// BM25 and the RAM vectors (embedded and in-memory stores).
    Local {
        /// The lexical index.
        bm25: Bm25Index,
        /// The users' vectors, loaded on first use.
        vectors: VectorIndex,
    },
    /// The store searches itself (PostgreSQL): an index local to one server would miss
    /// what the others write.
    Store(Arc<dyn StoreSearch>),
}

impl Retrieval {
    /// Picks the retrieval a store needs and makes it ready: a store that searches itself
    /// prepares its vector index and may keep copies within `copies`; otherwise `bm25` (a
    /// fresh one in RAM when `None`) is brought up to date with the store and the users'
    /// vectors get `copies.bytes`.
    pub(super) async fn open(
        store: &Arc<dyn MemoryStore>,
        bm25: Option<Bm25Index>,
        model: Option<(&str, usize)>,
        copies: SearchCopies,
    ) -> Result<Self> {
        match store.clone().searcher() {
            Some(search) => {
                search.prepare(model, copies).await?;
                Ok(Self::Store(search))
            }
            None => {
                let bm25 = match bm25 {
                    Some(i) => i,
                    None => Bm25Index::open(None)?,
                };
                bm25.sync_with(store.as_ref()).await?;
                Ok(Self::Local {
                    bm25,
                    vectors: VectorIndex::with_budget(copies.bytes),
                })
            }
        }
    }

    /// The revision the local lexical index has committed, if there is one.
    pub(super) fn indexed_revision(&self) -> Option<Revision> {
        match self {
            Self::Local { bm25, .. } => Some(bm25.revision()),
            Self::Store(_) => None,
        }
    }

    /// Bytes the users' vectors held in this process take (over PostgreSQL, its copies of
    /// users' terms and vectors, if it keeps any).
    pub(super) fn vector_bytes(&self) -> Option<u64> {
        match self {
            Self::Local { vectors, .. } => Some(vectors.weighted_bytes()),
            Self::Store(search) => search.copies_bytes(),
        }
    }

    /// Ids of a scope's current memories matching `filter`, from the local index or the
    /// store's copy of the user in RAM, as of `since` (no more than `cap`); `None` when
    /// neither holds the user or more match.
    pub(super) async fn tagged_ids(
        &self,
        scope: &Scope,
        filter: &Filter,
        cap: usize,
        since: Instant,
    ) -> Result<Option<Vec<String>>> {
        match self {
            Self::Local { bm25, .. } => {
                let ids = bm25.matching_ids(scope, filter, TimeRange::default())?;
                Ok((ids.len() <= cap).then(|| ids.into_iter().collect()))
            }
            Self::Store(search) => search.matching_ids(scope, filter, cap, since).await,
        }
    }

    /// Whether several servers may share the store.
    pub(super) fn is_shared(&self) -> bool {
        matches!(self, Self::Store(_))
    }

    /// The local index's directory, if it has one.
    pub(super) fn index_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Local { bm25, .. } => bm25.path(),
            Self::Store(_) => None,
        }
    }

    /// Brings the local indexes in step with a store write at `revision` (call in revision
    /// order, under the write lock). The receiver reports when the changes are searchable.
    pub(super) fn apply(
        &self,
        ops: Vec<IndexOp>,
        vectors: &[VectorOp],
        revision: Revision,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        match self {
            Self::Local { bm25, vectors: ram } => {
                ram.apply(vectors);
                bm25.enqueue(ops, revision)
            }
            // The store's own search sees the write the moment it commits.
            Self::Store(_) => {
                let (done, wait) = oneshot::channel();
                let _ = done.send(Ok(()));
                Ok(wait)
            }
        }
    }
}

impl MemoryService {
    /// BM25 candidates.
    ///
    /// `since`: when the caller began; a store that searches itself sees every write
    /// committed before it.
    pub(super) async fn lexical_candidates(
        &self,
        scope: &Scope,
        query: &str,
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: Instant,
    ) -> Result<Vec<Candidate>> {
        match &self.retrieval {
            Retrieval::Local { bm25, .. } => bm25.search(scope, query, filter, time, limit),
            Retrieval::Store(search) => {
                search
                    .lexical(
                        scope,
                        &crate::search::query_terms(query),
                        filter,
                        time,
                        limit,
                        since,
                    )
                    .await
            }
        }
    }

    /// Dense candidates for `text` (its last `search.dense_query_tokens`): cosine over the
    /// user's vectors (exact up to `search.exact_scan_rows`), filters applied inside.
    /// `since` as for [`Self::lexical_candidates`].
    pub(super) async fn dense_candidates(
        &self,
        scope: &Scope,
        text: &str,
        filter: Option<&Filter>,
        time: TimeRange,
        pool: usize,
        since: Instant,
    ) -> Result<Vec<Candidate>> {
        let Some(embedder) = &self.embedder else {
            return Ok(vec![]);
        };
        let tail = crate::text::tail_by_tokens(text, self.config.search.dense_query_tokens);
        let query = self.query_vector(embedder, tail).await?;
        let hits = match &self.retrieval {
            Retrieval::Local { bm25, vectors } => {
                let users = self
                    .user_vectors(vectors, scope, embedder.model_id())
                    .await?;
                let allowed = match filter {
                    Some(f) => Some(bm25.matching_ids(scope, f, time)?),
                    None => None,
                };
                users.read().unwrap_or_else(|e| e.into_inner()).search_with(
                    &query,
                    pool,
                    time,
                    allowed.as_ref().map(Allowed::Ids),
                    self.config.search.exact_scan_rows,
                )
            }
            Retrieval::Store(search) => {
                search
                    .dense(
                        scope,
                        embedder.model_id(),
                        &query,
                        filter,
                        time,
                        pool,
                        since,
                    )
                    .await?
            }
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
}
