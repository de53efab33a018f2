//! Retrieval: retrievers produce ranked [`Candidate`] lists, [`fusion`] merges them, and the
//! service ([`crate::service`]) hydrates, boosts and cuts the result.
//!
//! Today there is one retriever, BM25 ([`bm25`]). A dense retriever slots in beside it: it
//! returns its own candidate list with a calibrated `relativity`, and [`fusion::fuse`]
//! merges the lists by reciprocal rank.

pub mod bm25;
pub mod fusion;
pub mod vector;

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
