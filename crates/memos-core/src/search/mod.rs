//! Retrieval: retrievers produce ranked [`Candidate`] lists, [`fusion`] merges them, and the
//! service ([`crate::service`]) hydrates, boosts and cuts the result.
//!
//! Two retrievers: BM25 over tantivy ([`bm25`]) and exact dense scan ([`vector`]). Each
//! returns its own candidate list with a calibrated `relativity`; [`fusion`] merges them.
//! Over a store that searches itself ([`crate::store::StoreSearch`], PostgreSQL) the same
//! two lists come from the store instead (PostgreSQL's copy in each server's RAM: the RAM
//! vectors and [`postings`], kept current from the database), and the rest is unchanged.

pub mod bm25;
pub mod fusion;
pub mod postings;
pub mod vector;

use std::collections::HashSet;

use crate::model::{MemoryStatus, Millis};

/// The one definition of "current at `t`", which every retriever applies (the tantivy
/// query in [`bm25`], the RAM vectors in [`vector`], and the SQL of both SQL stores say the
/// same in their own languages): a memory is current at `t` if it is active, or was
/// archived (superseded) after `t`; with no `t` (now), only active memories are. Deleted
/// memories never are. `archived_at` is the memory's `update_time` when archived.
pub fn current_at(status: MemoryStatus, archived_at: Millis, t: Option<Millis>) -> bool {
    match status {
        MemoryStatus::Activated => true,
        MemoryStatus::Archived => t.is_some_and(|t| archived_at > t),
        MemoryStatus::Deleted => false,
    }
}

/// An inclusive range over a memory's effective time (`memory_time`, else `create_time`).
/// Retrievers apply it inside the search, like filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest time allowed.
    pub from: Option<Millis>,
    /// Latest time allowed.
    pub to: Option<Millis>,
}

impl TimeRange {
    /// Everything up to `t` (a search's `query_time`), or everything.
    pub fn until(t: Option<Millis>) -> Self {
        Self { from: None, to: t }
    }

    /// This range narrowed to `[start, end)`.
    pub fn within(self, start: Millis, end: Millis) -> Self {
        Self {
            from: Some(self.from.map_or(start, |f| f.max(start))),
            to: Some(self.to.map_or(end - 1, |t| t.min(end - 1))),
        }
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: Millis) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|u| t <= u)
    }

    /// Whether it allows everything.
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The archive time of a row whose memory is active, in the retrievers' per-row columns.
pub(crate) const ACTIVE: Millis = Millis::MAX;

/// Whether a row of the retrievers' columns (its effective time, and when it was archived or
/// [`ACTIVE`]) may answer a search over `time`: inside it, and current at its end.
pub(crate) fn row_eligible(time: TimeRange, at: Millis, archived: Millis) -> bool {
    let status = if archived == ACTIVE {
        MemoryStatus::Activated
    } else {
        MemoryStatus::Archived
    };
    time.contains(at) && current_at(status, archived, time.to)
}

/// Which memories a filtered search may return.
#[derive(Clone, Copy)]
pub enum Allowed<'a> {
    /// These ids: a retriever may visit just their rows when they are few.
    Ids(&'a HashSet<String>),
    /// The ids this test passes, asked only of the rows a search reaches: a filter that
    /// allows half of a big user costs no set of half its ids.
    Test(&'a (dyn Fn(&str) -> bool + Sync)),
}

impl Allowed<'_> {
    /// Whether the memory `id` may be returned.
    pub fn allows(&self, id: &str) -> bool {
        match self {
            Allowed::Ids(ids) => ids.contains(id),
            Allowed::Test(test) => test(id),
        }
    }
}

/// One retrieved memory, before hydration.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The memory's id.
    pub id: String,
    /// The retriever's own score; only comparable within one list.
    pub score: f32,
    /// A calibrated relevance in [0, 1] that means the same from query to query.
    pub relativity: f32,
}

impl Candidate {
    /// A BM25 hit: its relevance is the score over the most the query's terms could give
    /// (the sum of their idf), as every lexical retriever computes it.
    pub fn lexical(id: String, score: f32, idf_sum: f32) -> Self {
        Self {
            id,
            score,
            relativity: if idf_sum > 0.0 {
                (score / idf_sum).clamp(0.0, 1.0)
            } else {
                0.0
            },
        }
    }
}

/// The distinct terms a query searches for: [`crate::text::terms`], or, for a query of only
/// stop words ("what did I say?"), its plain words, which still deserve an answer. Every
/// lexical retriever uses this, so they agree on what a query means.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut words = crate::text::terms(query);
    if words.is_empty() {
        words = crate::text::words(query)
            .into_iter()
            .map(|w| w.term)
            .collect();
    }
    let mut seen = std::collections::HashSet::new();
    words.retain(|t| seen.insert(t.clone()));
    words
}
