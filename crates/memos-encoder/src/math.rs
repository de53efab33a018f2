//! The f32 arithmetic of the 8-bit forward pass between its products: layer norms, GELU,
//! attention, and the reductions they need, compiled once per instruction set.
//!
//! Why not leave them to candle: at a query's size these were most of the time (each
//! operation a tensor allocation, a layout check and often a thread hand-off), and the
//! crate is built for baseline x86-64, where the compiler vectorizes to 4 lanes of SSE2.
//! [`dispatched!`] compiles each routine again for AVX2 + FMA and for AVX-512 and runs the
//! one the [`Kernel`] names; the bodies are plain Rust loops the compiler vectorizes.
//!
//! Every routine gives the same bits on every kernel: reductions keep 16 partial sums
//! whatever the register width (so the order of additions never changes), and nothing is
//! fused into an FMA (Rust never contracts `a * b + c`). The tests hold the kernels to that.

use crate::int8::Kernel;

/// Defines `fn $name(kernel: Kernel, args..)` that runs `$body` compiled for the kernel's
/// instruction set: AVX-512 for [`Kernel::Avx512Vnni`], AVX2 + FMA for the 256-bit kernels,
/// baseline otherwise. Helpers the body calls must be `#[inline(always)]` to be compiled
/// with it.
macro_rules! dispatched {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name(kernel: $crate::int8::Kernel, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
            unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn narrow($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match kernel {
                // SAFETY: a `Kernel` other than `Portable` comes from `Kernel::supported`,
                // which saw these features on this CPU.
                #[cfg(target_arch = "x86_64")]
                $crate::int8::Kernel::Avx512Vnni => unsafe { wide($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::int8::Kernel::AvxVnni | $crate::int8::Kernel::Avx2 => unsafe {
                    narrow($($arg),*)
                },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use dispatched;

/// Partial sums kept apart in a reduction: one 512-bit register of f32.
const LANES: usize = 16;

/// `Σ x`, as 16 partial sums (vectorizes without reordering anything).
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `(min, max)` of `x` (NaN-free input), as 16 partial extremes.
#[inline(always)]
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::MAX; LANES], [f32::MIN; LANES]);
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    // Plain comparisons, not `f32::min`, whose NaN rule keeps the loop scalar.
    for c in chunks {
        for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(c) {
            *l = if v < *l { v } else { *l };
            *h = if v > *h { v } else { *h };
        }
    }
    let mut out = (f32::MAX, f32::MIN);
    for &v in lo.iter().chain(rest) {
        out.0 = if v < out.0 { v } else { out.0 };
    }
    for &v in hi.iter().chain(rest) {
        out.1 = if v > out.1 { v } else { out.1 };
    }
    out
}

/// `x + ROUNDER - ROUNDER` is `x` rounded to an integer, for `|x| < 2^22` (two additions
/// that vectorize, where `f32::round` is a libm call on baseline x86-64).
pub(crate) const ROUNDER: f32 = 12_582_912.0;

/// `x` rounded to the nearest integer, for `|x| < 2^22`: in `x + ROUNDER` the integer sits
/// in the low bits of the mantissa. Bit arithmetic, where `as i32` (which saturates and
/// maps NaN to 0) is a scalar conversion per value.
#[inline(always)]
pub(crate) fn round_to_i32(x: f32) -> i32 {
    (x + ROUNDER).to_bits() as i32 - ROUNDER.to_bits() as i32
}

/// `e^x` for `x <= 0` (0 below -87): `2^n · p(r)` with `x = n·ln 2 + r`, `|r| <= ln 2 / 2`,
/// and Cephes' degree-6 polynomial for `e^r`. Relative error below 2e-7; branch-free.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n · LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = if x < -87.0 { -87.0 } else { x };
    let n = (x * LOG2E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let exponent = round_to_i32(n);
    let mut p = 1.987_569_1e-4_f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5e-1,
    ] {
        p = p * r + c;
    }
    let e = p * r * r + r + 1.0;
    // n is in [-126, 0]: 2^n is a normal float built from its exponent bits.
    e * f32::from_bits(((exponent + 127) as u32) << 23)
}

/// erf by the rational approximation Eigen and XLA use for f32: odd numerator of degree 13
/// over an even denominator of degree 8 on [-4, 4] (erf is ±1 in f32 beyond). Branch-free,
/// so a loop over it vectorizes. Absolute error below 5e-7 in f32 arithmetic.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
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

/// BERT's exact GELU, `x · Φ(x)`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

dispatched! {
    /// GELU over every value of `x`, in place.
    pub(crate) fn gelu_in_place(x: &mut [f32]) {
        for v in x {
            *v = gelu(*v);
        }
    }
}

/// A LayerNorm's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) eps: f32,
}

impl Norm {
    /// `x ← LayerNorm(x + residual)` over rows of `weight.len()` values (`residual` may be
    /// empty: no residual).
    pub(crate) fn apply(&self, kernel: Kernel, x: &mut [f32], residual: &[f32]) {
        add_and_normalize(kernel, x, residual, &self.weight, &self.bias, self.eps);
    }
}

dispatched! {
    /// `x ← (x + residual - mean) / sqrt(var + eps) · w + b`, row by row (rows are
    /// `w.len()` wide; an empty `residual` adds nothing).
    fn add_and_normalize(x: &mut [f32], residual: &[f32], w: &[f32], b: &[f32], eps: f32) {
        let h = w.len();
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            if !residual.is_empty() {
                for (v, a) in row.iter_mut().zip(&residual[r * h..(r + 1) * h]) {
                    *v += a;
                }
            }
            let mean = sum(row) / h as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let mut sq = [0f32; LANES];
            for c in row.chunks_exact(LANES) {
                for (s, v) in sq.iter_mut().zip(c) {
                    *s += v * v;
                }
            }
            let tail: f32 = row.chunks_exact(LANES).remainder().iter().map(|v| v * v).sum();
            let var = (sq.iter().sum::<f32>() + tail) / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(w).zip(b) {
                *v = *v * inv * g + b;
            }
        }
    }
}

dispatched! {
    /// Self-attention of one sequence for heads `first..first + count`: `qkv` holds its
    /// tokens' query, key and value projections (`3 · hidden` per token, the attention's
    /// scale folded into the queries), and `ctx` receives each token's attended values for
    /// those heads (`count · d` per token; all heads' `ctx` is `hidden` per token, and
    /// groups of heads can go to different threads). `scratch` is reused between calls.
    pub(crate) fn attend(
        qkv: &[f32],
        ctx: &mut [f32],
        hidden: usize,
        first: usize,
        count: usize,
        scratch: &mut Vec<f32>,
    ) {
        attend_heads(qkv, ctx, hidden, first..first + count, scratch);
    }
}

/// The body of [`attend`].
#[inline(always)]
fn attend_heads(
    qkv: &[f32],
    ctx: &mut [f32],
    hidden: usize,
    heads: std::ops::Range<usize>,
    scratch: &mut Vec<f32>,
) {
    let len = qkv.len() / (3 * hidden);
    let width = ctx.len() / len.max(1);
    let d = width / heads.len().max(1);
    if len == 0 || d == 0 {
        return;
    }
    // Keys of one head transposed, (d, padded), then one row of scores: rows padded to whole
    // registers, so that no loop over tokens ends in scalar leftovers (at a query's 20
    // tokens those were most of the work).
    let padded = len.div_ceil(LANES) * LANES;
    scratch.clear();
    scratch.resize(d * padded + padded, 0.0);
    let (kt, scores) = scratch.split_at_mut(d * padded);
    for (slot, head) in heads.enumerate() {
        let (q_at, k_at, v_at) = (head * d, hidden + head * d, 2 * hidden + head * d);
        for j in 0..len {
            let key = &qkv[j * 3 * hidden + k_at..j * 3 * hidden + k_at + d];
            for (c, &v) in key.iter().enumerate() {
                kt[c * padded + j] = v;
            }
        }
        for i in 0..len {
            let q = &qkv[i * 3 * hidden + q_at..i * 3 * hidden + q_at + d];
            scores.fill(0.0);
            for (c, &qc) in q.iter().enumerate() {
                for (s, k) in scores.iter_mut().zip(&kt[c * padded..(c + 1) * padded]) {
                    *s += qc * k;
                }
            }
            let (_, max) = min_max(&scores[..len]);
            for s in scores.iter_mut() {
                *s = exp_neg(*s - max);
            }
            scores[len..].fill(0.0);
            let inv = 1.0 / sum(scores);
            let out = &mut ctx[i * width + slot * d..i * width + (slot + 1) * d];
            out.fill(0.0);
            for (j, &p) in scores[..len].iter().enumerate() {
                let p = p * inv;
                let v = &qkv[j * 3 * hidden + v_at..j * 3 * hidden + v_at + d];
                for (o, v) in out.iter_mut().zip(v) {
                    *o += p * v;
                }
            }
        }
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
    fn rounds_like_round_half_even() {
        for x in [
            0.0f32,
            0.4,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -126.0,
            127.4,
            -2.6,
            4_000_000.7,
        ] {
            assert_eq!(round_to_i32(x), x.round_ties_even() as i32, "{x}");
        }
    }

    #[test]
    fn exp_matches_the_reference_to_float_precision() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp_neg(x));
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(-200.0) < 1e-37);
    }

    /// Every routine gives the same bits on every kernel this CPU runs.
    #[test]
    fn every_kernel_gives_the_same_bits() {
        let xs: Vec<f32> = (0..3 * 2 * 96 * 5)
            .map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0)
            .collect();
        let kernels = Kernel::supported();
        let run = |k: Kernel| {
            let mut g = xs.clone();
            gelu_in_place(k, &mut g);
            let norm = Norm {
                weight: (0..96).map(|i| 1.0 + i as f32 / 100.0).collect(),
                bias: (0..96).map(|i| i as f32 / 50.0 - 1.0).collect(),
                eps: 1e-12,
            };
            let mut n = xs[..96 * 4].to_vec();
            norm.apply(k, &mut n, &xs[96 * 4..96 * 8]);
            let mut ctx = vec![0f32; 5 * 64];
            attend(k, &xs[..5 * 3 * 64], &mut ctx, 64, 0, 4, &mut Vec::new());
            (g, n, ctx)
        };
        let reference = run(Kernel::Portable);
        for k in kernels {
            assert!(run(k) == reference, "{}", k.name());
        }
    }

    #[test]
    fn attention_is_a_softmax_weighted_mean_of_values() {
        // One head of width 2, three tokens, rows [query, key, value]. Token 0's query is
        // zero: equal weights, the mean of the values. Token 1's query matches key 0 by 9:
        // weight e^9 / (e^9 + 2) on value 0.
        let qkv: Vec<f32> = [
            [0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            [9.0, 0.0, 0.0, 1.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
        .concat();
        let mut ctx = vec![0f32; 3 * 2];
        attend(Kernel::Portable, &qkv, &mut ctx, 2, 0, 1, &mut Vec::new());
        let e9 = 9f32.exp();
        let want = [1.0 / 3.0, 1.0 / 3.0, e9 / (e9 + 2.0), 1.0 / (e9 + 2.0)];
        for (got, want) in ctx.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{ctx:?}");
        }
    }
}
