//! [`Encoder`]: the BERT encoder's forward pass for inference on a CPU, in two forms:
//!
//! - **f32, on candle's tensors**: the reference. It computes what candle-transformers'
//!   `BertModel` computes (a test compares the two on both shipped models), with the same
//!   weight names, and is what calibrates the 8-bit form.
//! - **8 bits, on plain slices** (after [`Encoder::quantize`]): the dense layers' products in
//!   8 bits ([`QLinear`]), the norms, GELU and attention in f32 by [`crate::math`], all on
//!   the [`Kernel`] the CPU runs best. No tensors: at a query's size candle's per-operation
//!   work (allocation, layout checks, thread hand-offs) cost several times the arithmetic.
//!   Sequences are never padded: the dense layers take every token of every sequence as one
//!   matrix, and attention runs per sequence, so a batch costs what its tokens cost and a
//!   text's vector is the same bits alone or in any batch.
//!
//! Both fold the attention scale into the query weights and compute query, key and value
//! as one product; GELU is the exact one, through a vectorizable erf.

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Module, Shape, Storage, Tensor, bail,
};
use candle_nn::{LayerNorm, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::int8::{Kernel, QLinear};
use crate::math::{self, Norm};

/// Inputs of fewer tokens than this run on the calling thread alone; longer ones run in the
/// encoder's pool, split over its threads. At this size every product of a 384-wide model
/// is past `int8::PARALLEL_MIN`, so the second thread finds work every few microseconds and
/// never falls asleep between splits: a pass that split only some products measured slower
/// than one on a single thread (each wake-up costs tens of microseconds here).
const SPLIT_MIN_TOKENS: usize = 8;

/// Passes timed each way when [`Encoder::quantize`] decides whether one sequence splits.
const SPLIT_ROUNDS: usize = 15;

/// The thread pool the 8-bit pass runs in, as many threads as rayon's global pool
/// (`RAYON_NUM_THREADS`, else the CPUs).
///
/// Why its own pool, and why the whole pass runs inside it: rayon work started from outside
/// a pool is injected and the caller sleeps on a latch until it is done, a wake-up each way
/// per product, which made a query split over two cores slower than one (4.4 ms against
/// 2.6). Inside the pool, a product's split is a `join` that the other thread, still
/// awake from the last one, steals at once: one hand-off per pass instead of one per
/// product. `None` where the pool could not start (then everything runs on the caller).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("encoder-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// SmoothQuant's migration strength: how much of an input's range moves into its weights.
/// With the largest inputs out of the main product ([`APART_INPUTS`]), 0.3 and 0.4 gave
/// the vectors closest to f32's among 0.3-0.6; without them 0.5 was best. Closeness is
/// `memos bench embed --agreement`: mean 1 - cosine over the turns of LoCoMo's first two
/// conversations, as queries and passages (the figures are in the README).
const SMOOTH_ALPHA: f32 = 0.4;

/// Inputs of each dense layer quantized apart from the others: the largest after
/// smoothing. In the main product they still set each token's step for every other input.
/// Apart, they halved the distance to f32 (mean 1 - cosine 1.89e-4 to 9.1e-5; 4 and 16
/// measured the same, and kept in f32 instead of 8 bits, 16 gave 7.7e-5 but cost 15% of
/// the document throughput). The second product costs about 8% of the document throughput
/// (mostly its epilogue, one more conversion per output).
const APART_INPUTS: usize = 4;

/// `x @ wᵀ + b` in f32, `w` stored `(in, out)`.
#[derive(Debug)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn load(vb: &VarBuilder, out: usize, inp: usize) -> candle_core::Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        let b = vb.get(out, "bias")?;
        Self::new(&w, b)
    }

    /// From a weight in PyTorch's `(out, in)` layout.
    fn new(w: &Tensor, b: Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            w: w.t()?.contiguous()?,
            b,
        })
    }

    /// The same layer in 8 bits. `seen` is, per input, the largest magnitude that input took
    /// on the calibration sentences: inputs that run large (BERT has a few such channels
    /// after each LayerNorm, and GELU's output has more) are scaled down by
    /// `seen^α / largest weight^(1-α)` and their weights up by as much (SmoothQuant's
    /// migration, α = [`SMOOTH_ALPHA`]), so that one channel no longer sets the whole row's
    /// step; the [`APART_INPUTS`] inputs still largest after that are quantized apart.
    fn to_int8(&self, seen: &[f32]) -> candle_core::Result<QLinear> {
        let rows: Vec<Vec<f32>> = self.w.t()?.to_dtype(DType::F32)?.to_vec2()?; // (out, in)
        let (n, k) = (rows.len(), seen.len());
        let mut largest = vec![0f32; k];
        for row in &rows {
            if row.len() != k {
                bail!("calibration saw {k} inputs, the weight has {}", row.len());
            }
            for (m, v) in largest.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        let smooth: Vec<f32> = seen
            .iter()
            .zip(&largest)
            .map(|(&a, &w)| {
                if a > 0.0 && w > 0.0 {
                    a.powf(SMOOTH_ALPHA) / w.powf(1.0 - SMOOTH_ALPHA)
                } else {
                    1.0
                }
            })
            .collect();
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|row| row.iter().zip(&smooth).map(|(v, s)| v * s))
            .collect();
        let bias = self.b.to_dtype(DType::F32)?.to_vec1()?;
        // The inputs largest after smoothing, largest first (ties by index).
        let mut keep: Vec<usize> = (0..k).filter(|&i| seen[i] > 0.0).collect();
        let after = |i: usize| seen[i] / smooth[i];
        keep.sort_by(|&a, &b| after(b).total_cmp(&after(a)).then(a.cmp(&b)));
        keep.truncate(APART_INPUTS);
        Ok(QLinear::with_apart(&flat, n, k, bias, &keep).smoothed(&smooth))
    }

    /// `x` is `(tokens, in)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

/// Dense layers per encoder layer, in the order [`Encoder::run`] reports their inputs.
const DENSE_PER_LAYER: usize = 4;

/// One encoder layer in f32.
#[derive(Debug)]
struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    ff_in: Dense,
    ff_out: Dense,
    ff_norm: LayerNorm,
}

/// One encoder layer in 8 bits.
#[derive(Debug)]
struct QLayer {
    qkv: QLinear,
    attn_out: QLinear,
    attn_norm: Norm,
    ff_in: QLinear,
    ff_out: QLinear,
    ff_norm: Norm,
}

/// The encoder's layers: f32 as loaded, 8-bit after [`Encoder::quantize`] (the f32 dense
/// weights are dropped then: they are most of the model's memory after the word table).
#[derive(Debug)]
enum Layers {
    F32(Vec<Layer>),
    Int8 {
        layers: Vec<QLayer>,
        /// The embeddings' LayerNorm and the position and token-type rows, as slices.
        embed_norm: Norm,
        position: Vec<f32>,
        token_type: Vec<f32>,
        kernel: Kernel,
        /// Whether one sequence (of [`SPLIT_MIN_TOKENS`] or more) splits its pass over the
        /// pool; measured at [`Encoder::quantize`] ([`Encoder::split_pays`]).
        split: bool,
    },
}

/// A loaded BERT encoder.
#[derive(Debug)]
pub struct Encoder {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Layers,
    heads: usize,
    hidden: usize,
    device: Device,
}

impl Encoder {
    /// Loads the weights under Hugging Face's BERT names, at the root, under `bert.` or
    /// under the config's `model_type` (as candle-transformers looks for them).
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            bail!(
                "only GELU BERT models are supported, not {:?}",
                config.hidden_act
            );
        }
        let mut prefixes = vec![String::new(), "bert.".to_string()];
        if let Some(t) = &config.model_type {
            prefixes.push(format!("{t}."));
        }
        let Some(root) = prefixes
            .iter()
            .find(|p| vb.contains_tensor(&format!("{p}embeddings.word_embeddings.weight")))
        else {
            bail!("no embeddings.word_embeddings.weight in the weights");
        };
        let vb = if root.is_empty() {
            vb
        } else {
            vb.pp(root.trim_end_matches('.'))
        };
        let (h, ff) = (config.hidden_size, config.intermediate_size);
        let heads = config.num_attention_heads;
        if heads == 0 || h % heads != 0 {
            bail!("hidden size {h} does not split into {heads} heads");
        }
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let embed_norm = candle_nn::layer_norm(h, eps, e.pp("LayerNorm"))?;
        let word = e.get((config.vocab_size, h), "word_embeddings.weight")?;
        let position = e.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type = e.get((config.type_vocab_size, h), "token_type_embeddings.weight")?;
        let scale = 1.0 / ((h / heads) as f64).sqrt();
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let s = l.pp("attention.self");
                let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                    let p = s.pp(name);
                    Ok((p.get((h, h), "weight")?, p.get(h, "bias")?))
                };
                let ((qw, qb), (kw, kb), (vw, vb_)) =
                    (part("query")?, part("key")?, part("value")?);
                let qkv = Dense::new(
                    &Tensor::cat(&[(qw * scale)?, kw, vw], 0)?,
                    Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?,
                )?;
                Ok(Layer {
                    qkv,
                    attn_out: Dense::load(&l.pp("attention.output.dense"), h, h)?,
                    attn_norm: candle_nn::layer_norm(h, eps, l.pp("attention.output.LayerNorm"))?,
                    ff_in: Dense::load(&l.pp("intermediate.dense"), ff, h)?,
                    ff_out: Dense::load(&l.pp("output.dense"), h, ff)?,
                    ff_norm: candle_nn::layer_norm(h, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            word,
            position,
            token_type,
            embed_norm,
            layers: Layers::F32(layers),
            heads,
            hidden: h,
            device: vb.device().clone(),
        })
    }

    /// The kernel the 8-bit form runs on; `None` in f32.
    pub fn kernel(&self) -> Option<Kernel> {
        match &self.layers {
            Layers::F32(_) => None,
            Layers::Int8 { kernel, .. } => Some(*kernel),
        }
    }

    /// Runs the 8-bit form on another kernel this CPU supports (tests and benchmarks compare
    /// them; every kernel computes the same bits).
    pub fn set_kernel(&mut self, to: Kernel) -> candle_core::Result<()> {
        if !Kernel::supported().contains(&to) {
            bail!("this CPU does not run the {} kernel", to.name());
        }
        let Layers::Int8 { layers, kernel, .. } = &mut self.layers else {
            bail!("only the 8-bit form has kernels");
        };
        *kernel = to;
        for l in layers {
            for q in [&mut l.qkv, &mut l.attn_out, &mut l.ff_in, &mut l.ff_out] {
                q.set_kernel(to);
            }
        }
        Ok(())
    }

    /// Token ids `(n, len)` (token type 0) and their attention mask `(n, len)` of 0/1 to the
    /// last hidden states `(n, len, hidden)` (zero at padding in the 8-bit form).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        if let Layers::F32(layers) = &self.layers {
            return self.run(layers, ids, mask, &mut |_, _| Ok(()));
        }
        let (n, len) = ids.dims2()?;
        let ids: Vec<Vec<u32>> = ids.to_vec2()?;
        let mask: Vec<Vec<u32>> = mask.to_dtype(DType::U32)?.to_vec2()?;
        let seqs: Vec<Vec<u32>> = ids
            .iter()
            .zip(&mask)
            .map(|(i, m)| {
                i.iter()
                    .zip(m)
                    .filter(|(_, m)| **m != 0)
                    .map(|(i, _)| *i)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let mut out = vec![0f32; n * len * self.hidden];
        for (i, (states, m)) in self.hidden_states(&refs)?.iter().zip(&mask).enumerate() {
            let real = m
                .iter()
                .enumerate()
                .filter(|(_, m)| **m != 0)
                .map(|(t, _)| t);
            for (row, t) in states.chunks_exact(self.hidden).zip(real) {
                let at = (i * len + t) * self.hidden;
                out[at..at + self.hidden].copy_from_slice(row);
            }
        }
        Tensor::from_vec(out, (n, len, self.hidden), &self.device)
    }

    /// Each sequence of token ids (token type 0, no padding) to its last hidden states,
    /// `len · hidden` values, row-major.
    pub fn hidden_states(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let max = self.position.dim(0)?;
        if let Some(s) = seqs.iter().find(|s| s.len() > max) {
            bail!("{} tokens, the model has {max} positions", s.len());
        }
        let h = self.hidden;
        let Layers::Int8 { split, .. } = &self.layers else {
            // The reference: one padded batch through candle.
            let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
            if len == 0 {
                return Ok(seqs.iter().map(|_| Vec::new()).collect());
            }
            let n = seqs.len();
            let mut ids = vec![0u32; n * len];
            let mut mask = vec![0u32; n * len];
            for (i, s) in seqs.iter().enumerate() {
                ids[i * len..i * len + s.len()].copy_from_slice(s);
                mask[i * len..i * len + s.len()].fill(1);
            }
            let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
            let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
            let out: Vec<f32> = self.forward(&ids, &mask)?.flatten_all()?.to_vec1()?;
            return Ok(seqs
                .iter()
                .enumerate()
                .map(|(i, s)| out[i * len * h..(i * len + s.len()) * h].to_vec())
                .collect());
        };
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let flat = match pool() {
            Some(pool)
                if total >= SPLIT_MIN_TOKENS
                    && pool.current_num_threads() > 1
                    && (*split || seqs.len() >= pool.current_num_threads()) =>
            {
                if pool.current_thread_index().is_some() {
                    self.run_split(seqs, total)?
                } else {
                    pool.install(|| self.run_split(seqs, total))?
                }
            }
            _ => self.run_int8(seqs, false)?,
        };
        let mut at = 0;
        Ok(seqs
            .iter()
            .map(|s| {
                let v = flat[at * h..(at + s.len()) * h].to_vec();
                at += s.len();
                v
            })
            .collect())
    }

    /// The 8-bit pass over `seqs` (`total` tokens) split over the current pool's threads.
    fn run_split(&self, seqs: &[&[u32]], total: usize) -> candle_core::Result<Vec<f32>> {
        let threads = rayon::current_num_threads();
        Ok(if seqs.len() >= threads {
            // Whole sequences to each thread, about as many tokens each: no hand-off inside.
            let target = total.div_ceil(threads);
            let mut chunks: Vec<&[&[u32]]> = Vec::new();
            let (mut start, mut tokens) = (0, 0);
            for (i, s) in seqs.iter().enumerate() {
                tokens += s.len();
                if tokens >= target || i + 1 == seqs.len() {
                    chunks.push(&seqs[start..=i]);
                    (start, tokens) = (i + 1, 0);
                }
            }
            let parts: Vec<Vec<f32>> = chunks
                .par_iter()
                .map(|c| self.run_int8(c, false))
                .collect::<candle_core::Result<_>>()?;
            parts.concat()
        } else {
            // Fewer sequences than threads: each product and each attention split over the
            // threads.
            self.run_int8(seqs, true)?
        })
    }

    /// The 8-bit forward pass over `seqs`, every token's hidden state one after another.
    /// With `parallel`, each product and attention is split over the thread pool.
    fn run_int8(&self, seqs: &[&[u32]], parallel: bool) -> candle_core::Result<Vec<f32>> {
        let Layers::Int8 {
            layers,
            embed_norm,
            position,
            token_type,
            kernel,
            ..
        } = &self.layers
        else {
            bail!("the encoder is not 8-bit");
        };
        let (h, heads, kernel) = (self.hidden, self.heads, *kernel);
        let t: usize = seqs.iter().map(|s| s.len()).sum();
        let mut x = vec![0f32; t * h];
        {
            let (storage, layout) = self.word.storage_and_layout();
            let (Storage::Cpu(CpuStorage::F32(table)), Some((start, end))) =
                (&*storage, layout.contiguous_offsets())
            else {
                bail!("the word embeddings are not contiguous f32 on the CPU");
            };
            let table = &table[start..end];
            let mut rows = x.chunks_exact_mut(h);
            for s in seqs {
                for (p, &id) in s.iter().enumerate() {
                    let id = id as usize;
                    let (Some(word), Some(row)) = (table.get(id * h..(id + 1) * h), rows.next())
                    else {
                        bail!("token id {id} is outside the vocabulary");
                    };
                    let pos = &position[p * h..(p + 1) * h];
                    for (((d, w), p), t) in row.iter_mut().zip(word).zip(pos).zip(token_type) {
                        *d = w + p + t;
                    }
                }
            }
        }
        embed_norm.apply(kernel, &mut x, &[]);
        let mut scratch = Vec::new();
        for l in layers {
            let qkv = l.qkv.forward(&x, t, parallel);
            let mut ctx = vec![0f32; t * h];
            let mut at = 0;
            for s in seqs {
                let (q, c) = (
                    &qkv[at * 3 * h..(at + s.len()) * 3 * h],
                    &mut ctx[at * h..(at + s.len()) * h],
                );
                if parallel && heads > 1 {
                    attend_split(kernel, q, c, h, heads);
                } else {
                    math::attend(kernel, q, c, h, 0, heads, &mut scratch);
                }
                at += s.len();
            }
            let mut a = l.attn_out.forward(&ctx, t, parallel);
            l.attn_norm.apply(kernel, &mut a, &x);
            let mut f = l.ff_in.forward(&a, t, parallel);
            math::gelu_in_place(kernel, &mut f);
            x = l.ff_out.forward(&f, t, parallel);
            l.ff_norm.apply(kernel, &mut x, &a);
        }
        Ok(x)
    }

    /// Turns every dense layer to 8 bits, calibrated on `samples` (token ids and mask, as
    /// [`Encoder::forward`] takes them; one unpadded sentence each is best): the f32 model
    /// runs them once and records how large each layer's inputs get.
    pub fn quantize(&mut self, samples: &[(Tensor, Tensor)]) -> candle_core::Result<()> {
        let Layers::F32(f32_layers) = &self.layers else {
            bail!("the encoder is 8-bit already");
        };
        let mut seen: Vec<Vec<f32>> = vec![Vec::new(); f32_layers.len() * DENSE_PER_LAYER];
        for (ids, mask) in samples {
            self.run(f32_layers, ids, mask, &mut |slot, x| {
                let largest: Vec<f32> = x.abs()?.max(0)?.to_vec1()?;
                let s = &mut seen[slot];
                if s.is_empty() {
                    *s = largest;
                } else {
                    for (a, b) in s.iter_mut().zip(largest) {
                        *a = a.max(b);
                    }
                }
                Ok(())
            })?;
        }
        if seen.iter().any(Vec::is_empty) {
            bail!("no calibration samples");
        }
        let layers = f32_layers
            .iter()
            .zip(seen.chunks(DENSE_PER_LAYER))
            .map(|(l, seen)| {
                Ok(QLayer {
                    qkv: l.qkv.to_int8(&seen[0])?,
                    attn_out: l.attn_out.to_int8(&seen[1])?,
                    attn_norm: norm(&l.attn_norm)?,
                    ff_in: l.ff_in.to_int8(&seen[2])?,
                    ff_out: l.ff_out.to_int8(&seen[3])?,
                    ff_norm: norm(&l.ff_norm)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.layers = Layers::Int8 {
            layers,
            embed_norm: norm(&self.embed_norm)?,
            position: self.position.flatten_all()?.to_vec1()?,
            token_type: self.token_type.get(0)?.to_vec1()?,
            kernel: Kernel::best(),
            split: false,
        };
        let pays = self.split_pays()?;
        self.set_split(pays);
        Ok(())
    }

    /// Whether a query's pass is faster split over the pool than on one thread, timed on
    /// this machine: [`SPLIT_ROUNDS`] passes of a 16-token sequence each way, alternated,
    /// compared by their medians. Where a hand-off between threads is cheap the split wins
    /// (on one kind of 2-core VM 2.1-2.5 ms against 2.6-2.9); where it is not, it loses
    /// (on another 3.1 ms against 2.3-2.4, every product's `join` costing more than the
    /// second core saves), and the vectors are the same bits either way.
    fn split_pays(&self) -> candle_core::Result<bool> {
        let Some(pool) = pool().filter(|p| p.current_num_threads() > 1) else {
            return Ok(false);
        };
        let vocab = self.word.dim(0)? as u32;
        let seq: Vec<u32> = (0..16u32).map(|i| (1000 + 37 * i) % vocab).collect();
        let (mut solo, mut split) = (Vec::new(), Vec::new());
        for _ in 0..SPLIT_ROUNDS {
            let t = Instant::now();
            self.run_int8(&[&seq], false)?;
            solo.push(t.elapsed());
            let t = Instant::now();
            pool.install(|| self.run_split(&[&seq], seq.len()))?;
            split.push(t.elapsed());
        }
        solo.sort();
        split.sort();
        // A split must clearly win: on one thread the other core stays free for the rest
        // of the server.
        Ok(split[SPLIT_ROUNDS / 2] * 10 < solo[SPLIT_ROUNDS / 2] * 9)
    }

    /// Whether one sequence's pass is split over the pool (from [`Encoder::quantize`]'s
    /// measurement); `None` in f32.
    pub fn splits_one_sequence(&self) -> Option<bool> {
        match &self.layers {
            Layers::F32(_) => None,
            Layers::Int8 { split, .. } => Some(*split),
        }
    }

    /// Splits one sequence's pass over the pool or not, whatever was measured (tests and
    /// benchmarks compare them; the vectors are the same bits).
    pub fn set_split(&mut self, to: bool) {
        if let Layers::Int8 { split, .. } = &mut self.layers {
            *split = to;
        }
    }

    /// The f32 forward pass, showing `observe` each dense layer's input `(tokens, in)` first,
    /// numbered `layer · 4 + (0: qkv, 1: attention output, 2: feed-forward in, 3: out)`.
    fn run(
        &self,
        layers: &[Layer],
        ids: &Tensor,
        mask: &Tensor,
        observe: &mut dyn FnMut(usize, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<Tensor> {
        let (n, len) = ids.dims2()?;
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        if len > self.position.dim(0)? {
            bail!(
                "{len} tokens, the model has {} positions",
                self.position.dim(0)?
            );
        }
        let x = self
            .word
            .embedding(&ids.flatten_all()?)?
            .reshape((n, len, h))?
            .broadcast_add(&self.position.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        let mut x = self.embed_norm.forward(&x.reshape((n * len, h))?)?;
        // Additive mask, (n, 1, 1, len): 0 where a token is, a large negative where padding is.
        let m = mask.to_dtype(DType::F32)?;
        let padded = m.sum_all()?.to_scalar::<f32>()? < (n * len) as f32;
        let bias = if padded {
            Some(((m - 1.0)? * 1e4)?.reshape((n, 1, 1, len))?)
        } else {
            None
        };
        for (i, l) in layers.iter().enumerate() {
            let slot = i * DENSE_PER_LAYER;
            observe(slot, &x)?;
            // (n*len, 3h) -> three (n, heads, len, d)
            let qkv = l
                .qkv
                .forward(&x)?
                .reshape((n, len, 3, heads, d))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let mut scores = q.matmul(&k.t()?)?; // (n, heads, len, len)
            if let Some(b) = &bias {
                scores = scores.broadcast_add(b)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)? // (n, heads, len, d)
                .transpose(1, 2)?
                .reshape((n * len, h))?;
            observe(slot + 1, &ctx)?;
            let a = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            observe(slot + 2, &a)?;
            let f = l.ff_in.forward(&a)?.apply_op1_no_bwd(&Gelu)?;
            observe(slot + 3, &f)?;
            x = l.ff_norm.forward(&(l.ff_out.forward(&f)? + &a)?)?;
        }
        x.reshape((n, len, h))
    }
}

/// A LayerNorm's parameters as slices.
fn norm(n: &LayerNorm) -> candle_core::Result<Norm> {
    let Some(bias) = n.bias() else {
        bail!("a LayerNorm without a bias");
    };
    Ok(Norm {
        weight: n.weight().to_dtype(DType::F32)?.to_vec1()?,
        bias: bias.to_dtype(DType::F32)?.to_vec1()?,
        eps: n.eps() as f32,
    })
}

/// One sequence's attention with its heads split over the thread pool, each group into a
/// buffer of its own, then laid side by side in `ctx`.
fn attend_split(kernel: Kernel, qkv: &[f32], ctx: &mut [f32], hidden: usize, heads: usize) {
    let len = ctx.len() / hidden;
    let d = hidden / heads;
    let groups = rayon::current_num_threads().clamp(1, heads);
    let per = heads.div_ceil(groups);
    let parts: Vec<(usize, Vec<f32>)> = (0..heads)
        .step_by(per)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|first| {
            let count = per.min(heads - first);
            let mut part = vec![0f32; len * count * d];
            math::attend(
                kernel,
                qkv,
                &mut part,
                hidden,
                first,
                count,
                &mut Vec::new(),
            );
            (first, part)
        })
        .collect();
    for (first, part) in parts {
        let width = part.len() / len.max(1);
        for (t, row) in part.chunks_exact(width.max(1)).enumerate() {
            ctx[t * hidden + first * d..t * hidden + first * d + width].copy_from_slice(row);
        }
    }
}

/// BERT's exact GELU, `x · Φ(x)`, over a contiguous f32 tensor.
struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(v), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            bail!("gelu: contiguous f32 input only");
        };
        let out: Vec<f32> = v[start..end].iter().map(|&x| math::gelu(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_transformers::models::bert::BertModel;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn gelu_op_agrees_with_candles() {
        let xs: Vec<f32> = (-300..300).map(|i| i as f32 / 37.0).collect();
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let ours: Vec<f32> = t.apply_op1_no_bwd(&Gelu).unwrap().to_vec1().unwrap();
        let theirs: Vec<f32> = t.gelu_erf().unwrap().to_vec1().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    /// A small random BERT (2 layers, 64 wide, 4 heads), its weights under Hugging Face's
    /// names: the tests need no model files.
    fn random_bert() -> (VarBuilder<'static>, Config, usize) {
        let (h, ff, layers, vocab, positions) = (64, 256, 2, 300, 128);
        let config: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": vocab,
            "hidden_size": h,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "intermediate_size": ff,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "max_position_embeddings": positions,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
            "use_cache": true,
            "classifier_dropout": null,
            "model_type": "bert"
        }))
        .unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let mut tensors = HashMap::new();
        let mut put = |name: String, shape: &[usize], scale: f32, offset: f32| {
            let len: usize = shape.iter().product();
            let v: Vec<f32> = (0..len)
                .map(|_| offset + rng.random_range(-scale..scale))
                .collect();
            tensors.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
        };
        put(
            "embeddings.word_embeddings.weight".into(),
            &[vocab, h],
            1.0,
            0.0,
        );
        put(
            "embeddings.position_embeddings.weight".into(),
            &[positions, h],
            0.5,
            0.0,
        );
        put(
            "embeddings.token_type_embeddings.weight".into(),
            &[2, h],
            0.1,
            0.0,
        );
        let mut norms = vec!["embeddings.LayerNorm".to_string()];
        for i in 0..layers {
            let l = format!("encoder.layer.{i}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", ff, h),
                ("output.dense", h, ff),
            ] {
                let scale = 1.0 / (inp as f32).sqrt() * 1.7;
                put(format!("{l}.{name}.weight"), &[out, inp], scale, 0.0);
                put(format!("{l}.{name}.bias"), &[out], 0.1, 0.0);
            }
            norms.push(format!("{l}.attention.output.LayerNorm"));
            norms.push(format!("{l}.output.LayerNorm"));
        }
        for p in norms {
            put(format!("{p}.weight"), &[h], 0.2, 1.0);
            put(format!("{p}.bias"), &[h], 0.1, 0.0);
        }
        (
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            config,
            vocab,
        )
    }

    fn sequences(vocab: usize) -> Vec<Vec<u32>> {
        let mut rng = StdRng::seed_from_u64(9);
        // Lengths that leave partial row tiles, one token, and one long enough to split.
        [1usize, 3, 7, 17, 40, 120]
            .iter()
            .map(|&n| (0..n).map(|_| rng.random_range(0..vocab as u32)).collect())
            .collect()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
    }

    /// The f32 form is candle-transformers' `BertModel` (padded batch, mask and all).
    #[test]
    fn f32_form_agrees_with_candle_transformers() {
        let (vb, config, vocab) = random_bert();
        let ours = Encoder::load(vb.clone(), &config).unwrap();
        let theirs = BertModel::load(vb, &config).unwrap();
        let seqs = sequences(vocab);
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let states = ours.hidden_states(&refs).unwrap();
        for s in &seqs {
            let ids = Tensor::new(s.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let want: Vec<f32> = theirs
                .forward(&ids, &ids.zeros_like().unwrap(), None)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = &states[seqs.iter().position(|x| x == s).unwrap()];
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-4,
                "{} tokens: largest difference {worst}",
                s.len()
            );
        }
    }

    /// The 8-bit form: every token close to the f32 form; the same bits on every kernel this
    /// CPU runs; the same bits for a sequence alone, in a batch, and split over threads.
    #[test]
    fn int8_form_agrees_with_f32_on_every_kernel() {
        let (vb, config, vocab) = random_bert();
        let reference = Encoder::load(vb.clone(), &config).unwrap();
        let mut int8 = Encoder::load(vb, &config).unwrap();
        let calibration: Vec<(Tensor, Tensor)> = (0..4u32)
            .map(|i| {
                let ids: Vec<u32> = (0..20).map(|t| (t * 13 + i * 71) % vocab as u32).collect();
                let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let mask = ids.ones_like().unwrap();
                (ids, mask)
            })
            .collect();
        int8.quantize(&calibration).unwrap();
        let seqs = sequences(vocab);
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let want = reference.hidden_states(&refs).unwrap();
        let batch = int8.hidden_states(&refs).unwrap();
        for ((s, w), g) in seqs.iter().zip(&want).zip(&batch) {
            for (t, (w, g)) in w.chunks(64).zip(g.chunks(64)).enumerate() {
                let c = cosine(w, g);
                assert!(c > 0.995, "{} tokens, token {t}: cosine {c}", s.len());
            }
        }
        // Alone: on the calling thread (under SPLIT_MIN_TOKENS, or where a split does not
        // pay) or split over the pool.
        let measured = int8.splits_one_sequence();
        assert!(measured.is_some());
        for split in [true, false] {
            int8.set_split(split);
            for (s, b) in refs.iter().zip(&batch) {
                assert_eq!(
                    &int8.hidden_states(&[s]).unwrap()[0],
                    b,
                    "{} tokens, split {split}",
                    s.len()
                );
            }
        }
        int8.set_split(measured.unwrap_or_default());
        let on_one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            on_one_thread.install(|| int8.hidden_states(&refs).unwrap()),
            batch
        );
        for kernel in Kernel::supported() {
            int8.set_kernel(kernel).unwrap();
            assert_eq!(
                int8.hidden_states(&refs).unwrap(),
                batch,
                "{}",
                kernel.name()
            );
        }
        // The tensor interface pads, and gives the same states at the real tokens.
        let (ids, mask) = {
            let len = 7;
            let mut ids = vec![0u32; 2 * len];
            let mut mask = vec![0u32; 2 * len];
            ids[..3].copy_from_slice(&seqs[1]);
            mask[..3].fill(1);
            ids[len..].copy_from_slice(&seqs[2]);
            mask[len..].fill(1);
            (
                Tensor::from_vec(ids, (2, len), &Device::Cpu).unwrap(),
                Tensor::from_vec(mask, (2, len), &Device::Cpu).unwrap(),
            )
        };
        let padded: Vec<Vec<Vec<f32>>> = int8.forward(&ids, &mask).unwrap().to_vec3().unwrap();
        assert_eq!(padded[0][..3].concat(), batch[1]);
        assert_eq!(padded[1].concat(), batch[2]);
        assert!(padded[0][3..].iter().flatten().all(|v| *v == 0.0));
    }

    #[test]
    fn refuses_what_the_model_cannot_read() {
        let (vb, config, vocab) = random_bert();
        let f32 = Encoder::load(vb, &config).unwrap();
        let long = vec![1u32; 129];
        assert!(f32.hidden_states(&[&long]).is_err(), "past the positions");
        let mut int8 = f32;
        let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
        int8.quantize(&[(ids.clone(), ids.ones_like().unwrap())])
            .unwrap();
        let outside = [vocab as u32];
        assert!(
            int8.hidden_states(&[&outside]).is_err(),
            "outside the vocabulary"
        );
        assert!(int8.hidden_states(&[&long]).is_err(), "past the positions");
        assert!(int8.hidden_states(&[]).unwrap().is_empty());
        assert!(int8.set_kernel(Kernel::Portable).is_ok());
    }
}
