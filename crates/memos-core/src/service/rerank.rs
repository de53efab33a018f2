//! `rerank`: orders a client's candidate texts by relevance to a query, with the same two
//! signals search ranks memories by: the share of the query's terms a text covers, and
//! the embedding model's calibrated cosine when a model is loaded. Nothing is stored.

use std::collections::HashSet;

use crate::error::{Error, InputErrorKind, Result};
use crate::text;

use super::MemoryService;

/// Most documents one rerank takes.
pub const MAX_RERANK_DOCUMENTS: usize = 100;

/// One reranked document.
#[derive(Debug, Clone, PartialEq)]
pub struct Reranked {
    /// Its position in the request.
    pub index: usize,
    /// Relevance in [0, 1], comparable across requests like search's `relativity`.
    pub relevance: f32,
}

impl MemoryService {
    /// The documents' relevance to `query`, best first (ties keep request order), at most
    /// `top_n`.
    pub async fn rerank(
        &self,
        query: &str,
        documents: &[String],
        top_n: Option<usize>,
    ) -> Result<Vec<Reranked>> {
        if query.trim().is_empty() {
            return Err(Error::required("query"));
        }
        if documents.is_empty() {
            return Err(Error::input(
                "documents",
                "documents must hold at least one text",
                InputErrorKind::Empty,
            ));
        }
        if documents.len() > MAX_RERANK_DOCUMENTS {
            return Err(Error::invalid(
                "documents",
                format!("at most {MAX_RERANK_DOCUMENTS} documents per rerank"),
            ));
        }
        let total: usize =
            documents.iter().map(|d| d.chars().count()).sum::<usize>() + query.chars().count();
        if total > self.config.limits.max_add_chars {
            return Err(Error::input(
                "documents",
                format!(
                    "query and documents hold at most {} characters",
                    self.config.limits.max_add_chars
                ),
                InputErrorKind::TooLarge,
            ));
        }
        if top_n == Some(0) {
            return Err(Error::invalid("top_n", "top_n must be at least 1"));
        }
        let wanted: HashSet<String> = text::terms(query).into_iter().collect();
        let lexical = |doc: &str| -> f32 {
            if wanted.is_empty() {
                return 0.0;
            }
            let have: HashSet<String> = text::terms(doc).into_iter().collect();
            wanted.intersection(&have).count() as f32 / wanted.len() as f32
        };
        let dense: Vec<f32> = match &self.embedder {
            Some(e) => {
                let q = self.query_vector(e, query).await?;
                // Off the async executor, as every embedding; the caller waits on it.
                let vectors =
                    super::embedding::embed_documents(e.clone(), documents.to_vec(), false)
                        .await??;
                vectors
                    .iter()
                    .map(|v| e.calibrate(crate::embed::dot(&q, v)))
                    .collect()
            }
            None => vec![0.0; documents.len()],
        };
        let mut out: Vec<Reranked> = documents
            .iter()
            .enumerate()
            .map(|(index, d)| Reranked {
                index,
                relevance: lexical(d).max(dense[index]).clamp(0.0, 1.0),
            })
            .collect();
        out.sort_by(|a, b| {
            b.relevance
                .total_cmp(&a.relevance)
                .then(a.index.cmp(&b.index))
        });
        out.truncate(top_n.unwrap_or(usize::MAX));
        Ok(out)
    }
}
