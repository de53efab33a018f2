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
/// instruction set: AVX-512 for [`Kernel::Amx`] and [`Kernel::Avx512Vnni`], AVX2 + FMA for the 256-bit kernels,
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
                $crate::int8::Kernel::Amx | $crate::int8::Kernel::Avx512Vnni => unsafe {
                    wide($($arg),*)
                },
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

/// Self-attention of one sequence for heads `first..first + count`: `qkv` holds its
/// tokens' query, key and value projections (`3 · hidden` per token, the attention's scale
/// folded into the queries), and `ctx` receives each token's attended values for those
/// heads (`count · d` per token; all heads' `ctx` is `hidden` per token, and groups of heads
/// can go to different threads). `scratch` is reused between calls.
pub(crate) fn attend(
    kernel: Kernel,
    qkv: &[f32],
    ctx: &mut [f32],
    hidden: usize,
    first: usize,
    count: usize,
    scratch: &mut Vec<f32>,
) {
    let heads = first..first + count;
    match kernel {
        // SAFETY: a `Kernel` other than `Portable` comes from `Kernel::supported`, which saw
        // these features on this CPU.
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx | Kernel::Avx512Vnni => unsafe {
            x86::attend_avx512(qkv, ctx, hidden, heads, scratch)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::AvxVnni | Kernel::Avx2 => unsafe {
            x86::attend_avx2(qkv, ctx, hidden, heads, scratch)
        },
        _ => attend_heads::<[f32; LANES]>(qkv, ctx, hidden, heads, scratch),
    }
}

/// Sixteen f32 lanes, as the attention's tiles use them: one AVX-512 register, two AVX2
/// registers, or an array. Written with intrinsics because the compiler did not keep a
/// tile's sums in registers when given arrays.
trait Lanes: Copy {
    fn zero() -> Self;
    fn splat(v: f32) -> Self;
    fn load(p: &[f32; LANES]) -> Self;
    fn store(self, p: &mut [f32; LANES]);
    /// `self + a · b`, rounded twice as plain Rust rounds it (no FMA), so every kernel
    /// gives the same bits.
    fn add_mul(self, a: Self, b: Self) -> Self;
}

impl Lanes for [f32; LANES] {
    #[inline(always)]
    fn zero() -> Self {
        [0.0; LANES]
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        [v; LANES]
    }
    #[inline(always)]
    fn load(p: &[f32; LANES]) -> Self {
        *p
    }
    #[inline(always)]
    fn store(self, p: &mut [f32; LANES]) {
        *p = self;
    }
    #[inline(always)]
    fn add_mul(self, a: Self, b: Self) -> Self {
        std::array::from_fn(|l| self[l] + a[l] * b[l])
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! [`Lanes`] on AVX-512 and AVX2, and the attention compiled for each.

    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{LANES, Lanes, attend_heads};

    #[derive(Clone, Copy)]
    pub(super) struct Avx512(__m512);

    // SAFETY (every method): only reached from `attend_avx512`, compiled with AVX-512F; the
    // pointers are to whole 16-lane arrays.
    impl Lanes for Avx512 {
        #[inline(always)]
        fn zero() -> Self {
            Self(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        fn splat(v: f32) -> Self {
            Self(unsafe { _mm512_set1_ps(v) })
        }
        #[inline(always)]
        fn load(p: &[f32; LANES]) -> Self {
            Self(unsafe { _mm512_loadu_ps(p.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, p: &mut [f32; LANES]) {
            unsafe { _mm512_storeu_ps(p.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn add_mul(self, a: Self, b: Self) -> Self {
            Self(unsafe { _mm512_add_ps(self.0, _mm512_mul_ps(a.0, b.0)) })
        }
    }

    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256, __m256);

    // SAFETY (every method): only reached from `attend_avx2`, compiled with AVX2; the
    // pointers are to whole 16-lane arrays.
    impl Lanes for Avx2 {
        #[inline(always)]
        fn zero() -> Self {
            unsafe { Self(_mm256_setzero_ps(), _mm256_setzero_ps()) }
        }
        #[inline(always)]
        fn splat(v: f32) -> Self {
            unsafe { Self(_mm256_set1_ps(v), _mm256_set1_ps(v)) }
        }
        #[inline(always)]
        fn load(p: &[f32; LANES]) -> Self {
            unsafe {
                Self(
                    _mm256_loadu_ps(p.as_ptr()),
                    _mm256_loadu_ps(p.as_ptr().add(8)),
                )
            }
        }
        #[inline(always)]
        fn store(self, p: &mut [f32; LANES]) {
            unsafe {
                _mm256_storeu_ps(p.as_mut_ptr(), self.0);
                _mm256_storeu_ps(p.as_mut_ptr().add(8), self.1);
            }
        }
        #[inline(always)]
        fn add_mul(self, a: Self, b: Self) -> Self {
            unsafe {
                Self(
                    _mm256_add_ps(self.0, _mm256_mul_ps(a.0, b.0)),
                    _mm256_add_ps(self.1, _mm256_mul_ps(a.1, b.1)),
                )
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    pub(super) unsafe fn attend_avx512(
        qkv: &[f32],
        ctx: &mut [f32],
        hidden: usize,
        heads: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        attend_heads::<Avx512>(qkv, ctx, hidden, heads, scratch)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend_avx2(
        qkv: &[f32],
        ctx: &mut [f32],
        hidden: usize,
        heads: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        attend_heads::<Avx2>(qkv, ctx, hidden, heads, scratch)
    }
}

/// Query rows per attention tile.
const TILE_ROWS: usize = 4;

/// The body of [`attend`]: for each head, the scores of every query against every key, a
/// softmax per row, then the values weighted by it. Heads of 16, 32 or 64 channels (BERT's
/// small and base sizes) take [`attend_tiled`]; others a plain loop.
#[inline(always)]
fn attend_heads<S: Lanes>(
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
    let padded = len.div_ceil(LANES) * LANES;
    scratch.clear();
    scratch.resize(d * padded + len * padded + len, 0.0);
    let (kt, rest) = scratch.split_at_mut(d * padded);
    let (scores, inv) = rest.split_at_mut(len * padded);
    for (slot, head) in heads.enumerate() {
        let at = Head {
            q: head * d,
            k: hidden + head * d,
            v: 2 * hidden + head * d,
            out: slot * d,
            hidden,
            width,
        };
        match d {
            16 => attend_tiled::<S, 1>(qkv, ctx, &at, kt, scores, inv),
            32 => attend_tiled::<S, 2>(qkv, ctx, &at, kt, scores, inv),
            64 => attend_tiled::<S, 4>(qkv, ctx, &at, kt, scores, inv),
            _ => attend_plain(qkv, ctx, &at, d, scores, inv),
        }
    }
}

/// Where one head's parts sit in a token's `qkv` row and `ctx` row.
struct Head {
    q: usize,
    k: usize,
    v: usize,
    out: usize,
    hidden: usize,
    width: usize,
}

impl Head {
    fn part<'a>(&self, qkv: &'a [f32], t: usize, at: usize, d: usize) -> &'a [f32] {
        let start = t * 3 * self.hidden + at;
        &qkv[start..start + d]
    }
}

/// One head of `V` · 16 channels: keys transposed into blocks of 16 tokens
/// (`[block][c][16]`, zero past the last token), then both products in tiles of 4 query rows
/// by 32 columns whose sums stay in registers (one row's sum per 16 columns was bound by the
/// latency of its additions).
#[inline(always)]
fn attend_tiled<S: Lanes, const V: usize>(
    qkv: &[f32],
    ctx: &mut [f32],
    at: &Head,
    kt: &mut [f32],
    scores: &mut [f32],
    inv: &mut [f32],
) {
    let d = V * LANES;
    let len = inv.len();
    let padded = scores.len() / len;
    let kt = &mut kt[..d * padded];
    for j in 0..len {
        let block = &mut kt[(j / LANES) * d * LANES..];
        for (c, &v) in at.part(qkv, j, at.k, d).iter().enumerate() {
            block[c * LANES + j % LANES] = v;
        }
    }
    let (blocks, _) = kt.as_chunks::<LANES>(); // [block · d + c][16]
    for i0 in (0..len).step_by(TILE_ROWS) {
        match len - i0 {
            1 => score_tile::<S, 1, V>(qkv, at, i0, blocks, scores, padded),
            2 => score_tile::<S, 2, V>(qkv, at, i0, blocks, scores, padded),
            3 => score_tile::<S, 3, V>(qkv, at, i0, blocks, scores, padded),
            _ => score_tile::<S, TILE_ROWS, V>(qkv, at, i0, blocks, scores, padded),
        }
    }
    softmax_rows(scores, inv, len);
    for i0 in (0..len).step_by(TILE_ROWS) {
        match len - i0 {
            1 => weigh_tile::<S, 1, V>(qkv, ctx, at, i0, scores, inv),
            2 => weigh_tile::<S, 2, V>(qkv, ctx, at, i0, scores, inv),
            3 => weigh_tile::<S, 3, V>(qkv, ctx, at, i0, scores, inv),
            _ => weigh_tile::<S, TILE_ROWS, V>(qkv, ctx, at, i0, scores, inv),
        }
    }
}

/// Scores of query rows `i0..i0 + R` against every key, two blocks of 16 keys at a time.
#[inline(always)]
fn score_tile<S: Lanes, const R: usize, const V: usize>(
    qkv: &[f32],
    at: &Head,
    i0: usize,
    blocks: &[[f32; LANES]],
    scores: &mut [f32],
    padded: usize,
) {
    let d = V * LANES;
    let q: [&[f32]; R] = std::array::from_fn(|r| at.part(qkv, i0 + r, at.q, d));
    let n = padded / LANES;
    let mut b = 0;
    while b < n {
        let pair = b + 1 < n;
        let k0 = &blocks[b * d..(b + 1) * d];
        let k1 = if pair {
            &blocks[(b + 1) * d..(b + 2) * d]
        } else {
            k0
        };
        let mut acc = [[S::zero(); 2]; R];
        for c in 0..d {
            let (x0, x1) = (S::load(&k0[c]), S::load(&k1[c]));
            for r in 0..R {
                let qc = S::splat(q[r][c]);
                acc[r][0] = acc[r][0].add_mul(qc, x0);
                acc[r][1] = acc[r][1].add_mul(qc, x1);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = &mut scores[(i0 + r) * padded..(i0 + r + 1) * padded];
            let (out, _) = row.as_chunks_mut::<LANES>();
            acc[0].store(&mut out[b]);
            if pair {
                acc[1].store(&mut out[b + 1]);
            }
        }
        b += 2;
    }
}

/// Rows `i0..i0 + R` of the attended values: each row's weights over every value row.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a tile's indices read clearer than zipped iterators
fn weigh_tile<S: Lanes, const R: usize, const V: usize>(
    qkv: &[f32],
    ctx: &mut [f32],
    at: &Head,
    i0: usize,
    scores: &[f32],
    inv: &[f32],
) {
    let d = V * LANES;
    let len = inv.len();
    let padded = scores.len() / len;
    let p: [&[f32]; R] = std::array::from_fn(|r| &scores[(i0 + r) * padded..][..len]);
    let mut acc = [[S::zero(); V]; R];
    for j in 0..len {
        let (value, _) = at.part(qkv, j, at.v, d).as_chunks::<LANES>();
        let x: [S; V] = std::array::from_fn(|v| S::load(&value[v]));
        for r in 0..R {
            let pj = S::splat(p[r][j]);
            for v in 0..V {
                acc[r][v] = acc[r][v].add_mul(pj, x[v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let start = (i0 + r) * at.width + at.out;
        let (out, _) = ctx[start..start + d].as_chunks_mut::<LANES>();
        let scale = S::splat(inv[i0 + r]);
        for (o, a) in out.iter_mut().zip(acc) {
            S::zero().add_mul(*a, scale).store(o);
        }
    }
}

/// Each row of `scores` (`len` scores, padded) to `e^(s - max)`, zero in the padding, and
/// the inverse of its sum into `inv`.
#[inline(always)]
fn softmax_rows(scores: &mut [f32], inv: &mut [f32], len: usize) {
    let padded = scores.len() / len.max(1);
    for (row, inv) in scores.chunks_exact_mut(padded).zip(inv.iter_mut()) {
        let (_, max) = min_max(&row[..len]);
        for s in row.iter_mut() {
            *s = exp_neg(*s - max);
        }
        row[len..].fill(0.0);
        *inv = 1.0 / sum(row);
    }
}

/// One head of any width, one multiply-add at a time.
#[inline(always)]
fn attend_plain(
    qkv: &[f32],
    ctx: &mut [f32],
    at: &Head,
    d: usize,
    scores: &mut [f32],
    inv: &mut [f32],
) {
    let len = inv.len();
    let padded = scores.len() / len;
    for i in 0..len {
        let q = at.part(qkv, i, at.q, d);
        for j in 0..len {
            let k = at.part(qkv, j, at.k, d);
            scores[i * padded + j] = q.iter().zip(k).map(|(a, b)| a * b).sum();
        }
    }
    softmax_rows(scores, inv, len);
    for i in 0..len {
        for c in 0..d {
            let mut a = 0f32;
            for j in 0..len {
                a += scores[i * padded + j] * at.part(qkv, j, at.v, d)[c];
            }
            ctx[i * at.width + at.out + c] = a * inv[i];
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
        let xs: Vec<f32> = (0..5000)
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
            // Heads of 16 and 32 (tiled) and of 64 / 3 (plain), over 5 tokens and 21.
            let mut ctx = Vec::new();
            for (count, len) in [(4, 5), (2, 5), (3, 5), (2, 21)] {
                let mut c = vec![0f32; len * 64 / count * count];
                let qkv = &xs[..len * 3 * 64];
                attend(k, qkv, &mut c, 64, 0, count, &mut Vec::new());
                ctx.extend(c);
            }
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
