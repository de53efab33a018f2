//! Knowledge bases: a project's documents, read into text ([`parse`]) and split into
//! chunks that keep their heading and position ([`chunk`]). Each chunk is stored as a
//! memory of the knowledge base's own partition ([`crate::model::kb_subject`]), so the
//! store, both retrievers and the embedder treat it like any memory, and a search names
//! the knowledge bases whose partitions it also ranks.

pub mod chunk;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod parse;
