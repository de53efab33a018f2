//! [`FakeEmbedder`]: hashed bag of words. Texts that share words get similar vectors, so
//! tests of the dense path can assert real behaviour without loading a model.

use super::{Embedder, normalize};
use crate::error::Result;
use crate::text;

/// A deterministic embedder for tests.
#[derive(Debug, Clone)]
pub struct FakeEmbedder {
    dim: usize,
}

impl FakeEmbedder {
    /// A fake embedder with vectors of `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Self { dim }
    }

    fn embed(&self, t: &str) -> Vec<f32> {
        let mut v = vec![0.0; self.dim];
        for term in text::terms(t) {
            // FNV-1a: stable across runs and platforms.
            let h = term.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            v[(h % self.dim as u64) as usize] += 1.0;
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for FakeEmbedder {
    fn model_id(&self) -> &str {
        "fake-hashed-bow"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed(t)).collect())
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(text))
    }

    fn calibrate(&self, cosine: f32) -> f32 {
        cosine.clamp(0.0, 1.0)
    }
}
