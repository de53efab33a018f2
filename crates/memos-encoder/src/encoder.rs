//! [`Encoder`]: the BERT encoder's forward pass, built from candle's tensor operations for
//! inference on a CPU.
//!
//! It computes what candle-transformers' `BertModel` computes (the tests compare the two on
//! both shipped models), with the same weight names, but spends less of a query's time
//! outside the matrix products, which are most of what the arithmetic needs:
//!
//! - GELU through a rational approximation of erf that the compiler vectorizes (error
//!   below 5e-7), where candle evaluates erf one f64 at a time: that alone was a quarter of
//!   a short query's time (`memos bench embed`).
//! - Query, key and value projections as one product, weights stored transposed and
//!   contiguous (the layout candle's matmul packs fastest), the attention scale folded into
//!   the query weights.
//! - No attention mask when nothing is padded, which is every single query.
//! - After [`Encoder::quantize`], the dense layers' products in 8 bits ([`QLinear`]); the
//!   attention's products, the norms and GELU stay in f32.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Shape, Tensor, bail};
use candle_nn::{LayerNorm, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::int8::QLinear;

/// `x @ wᵀ + b`: in f32 with `w` stored `(in, out)`, or in 8 bits ([`QLinear`]).
#[derive(Debug)]
enum Dense {
    F32 { w: Tensor, b: Tensor },
    Int8(QLinear),
}

impl Dense {
    fn load(vb: &VarBuilder, out: usize, inp: usize) -> candle_core::Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        let b = vb.get(out, "bias")?;
        Self::new(&w, b)
    }

    /// From a weight in PyTorch's `(out, in)` layout.
    fn new(w: &Tensor, b: Tensor) -> candle_core::Result<Self> {
        Ok(Self::F32 {
            w: w.t()?.contiguous()?,
            b,
        })
    }

    /// The same layer in 8 bits. `seen` is, per input, the largest magnitude that input took
    /// on the calibration sentences: inputs that run large (BERT has a few such channels
    /// after each LayerNorm, and GELU's output has more) are scaled down by
    /// `sqrt(seen / largest weight)` and their weights up by as much (SmoothQuant's migration
    /// at α = 0.5), so that one channel no longer sets the whole row's step.
    fn to_int8(&self, seen: &[f32]) -> candle_core::Result<Self> {
        let Self::F32 { w, b } = self else {
            bail!("the layer is 8-bit already");
        };
        let rows: Vec<Vec<f32>> = w.t()?.to_dtype(DType::F32)?.to_vec2()?; // (out, in)
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
                    (a / w).sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|row| row.iter().zip(&smooth).map(|(v, s)| v * s))
            .collect();
        let bias = b.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Self::Int8(
            QLinear::new(&flat, n, k, bias).smoothed(&smooth),
        ))
    }

    /// `x` is `(tokens, in)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::F32 { w, b } => x.matmul(w)?.broadcast_add(b),
            Self::Int8(q) => x.contiguous()?.apply_op1_no_bwd(q),
        }
    }
}

/// Dense layers per encoder layer, in the order [`Encoder::run`] reports their inputs.
const DENSE_PER_LAYER: usize = 4;

#[derive(Debug)]
struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    ff_in: Dense,
    ff_out: Dense,
    ff_norm: LayerNorm,
}

/// A loaded BERT encoder.
#[derive(Debug)]
pub struct Encoder {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
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
            layers,
            heads,
            hidden: h,
            device: vb.device().clone(),
        })
    }

    /// The device the weights live on (inputs must be on it too).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Token ids `(n, len)` (token type 0) and their attention mask `(n, len)` of 0/1 to the
    /// last hidden states `(n, len, hidden)`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.run(ids, mask, &mut |_, _| Ok(()))
    }

    /// Turns every dense layer to 8 bits, calibrated on `samples` (token ids and mask, as
    /// [`Encoder::forward`] takes them; one unpadded sentence each is best): the f32 model
    /// runs them once and records how large each layer's inputs get.
    pub fn quantize(&mut self, samples: &[(Tensor, Tensor)]) -> candle_core::Result<()> {
        let mut seen: Vec<Vec<f32>> = vec![Vec::new(); self.layers.len() * DENSE_PER_LAYER];
        for (ids, mask) in samples {
            self.run(ids, mask, &mut |slot, x| {
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
        for (l, seen) in self.layers.iter_mut().zip(seen.chunks(DENSE_PER_LAYER)) {
            if seen.iter().any(Vec::is_empty) {
                bail!("no calibration samples");
            }
            l.qkv = l.qkv.to_int8(&seen[0])?;
            l.attn_out = l.attn_out.to_int8(&seen[1])?;
            l.ff_in = l.ff_in.to_int8(&seen[2])?;
            l.ff_out = l.ff_out.to_int8(&seen[3])?;
        }
        Ok(())
    }

    /// The forward pass, showing `observe` each dense layer's input `(tokens, in)` first,
    /// numbered `layer · 4 + (0: qkv, 1: attention output, 2: feed-forward in, 3: out)`.
    fn run(
        &self,
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
        for (i, l) in self.layers.iter().enumerate() {
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

/// erf by the rational approximation Eigen and XLA use for f32: odd numerator of degree 13
/// over an even denominator of degree 8 on [-4, 4] (erf is ±1 in f32 beyond). Branch-free,
/// so a loop over it vectorizes. Absolute error below 5e-7 in f32 arithmetic.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_1e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
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
        let out: Vec<f32> = v[start..end].iter().map(|&x| gelu(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_the_reference_to_float_precision() {
        // Against candle's own f64 erf, over the whole range GELU sees.
        let mut worst = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f64 / 10_000.0;
            let want = candle_core::cpu::erf::erf_f64(x);
            worst = worst.max((f64::from(erf(x as f32)) - want).abs());
        }
        assert!(worst < 1e-6, "worst error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(9.0) >= 0.999_999 && erf(-9.0) <= -0.999_999);
    }

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
}
