//! [`QLinear`]: the encoder's dense layers in 8 bits, with the instructions picked at run time.
//!
//! Why: a short query spends most of its time in the dense layers' products, and in f32 those
//! stream 85 MB of e5-small's weights through the cores for every query. In 8 bits the
//! weights are a quarter of that, and the int8 dot-product instructions do four multiply-adds
//! per 32-bit lane per instruction (`memos bench embed` prints both precisions).
//!
//! How:
//! - weights per output channel: `w ≈ scale[n] · q[n][k]`, `q` in [-127, 127];
//! - activations per row (token), over the row's own range: `x ≈ sa[m] · (a[m][k] + z[m])`,
//!   `a` in [-127, 127] and `z` the row's zero point, quantized on the fly before each
//!   product (a range rather than a magnitude: after GELU a row runs from -0.17 up, and a
//!   symmetric scale would spend half its codes on values that never occur);
//! - `y[m][n] = sa[m] · scale[n] · (Σ_k a[m][k] · q[n][k] + z[m] · Σ_k q[n][k]) + bias[n]`,
//!   the sums exact in i32;
//! - a few inputs chosen at calibration (the largest after smoothing) are quantized apart,
//!   over their own range per row, in a second narrow product added to the first
//!   ([`QLinear::with_apart`]): after smoothing these still set each token's range, so
//!   every other input got a coarser step for them.
//!
//! Weights are packed once so that one 64-byte load holds 4 consecutive inputs of 16
//! consecutive outputs (`[n / 16][k / 4][16][4]`), the layout `vpdpbusd` consumes: a
//! broadcast of 4 activation bytes times one load updates 16 outputs, with no horizontal
//! sums. The same layout, 16 steps at a time, is the right-hand tile of AMX's `tdpbusd`. The
//! [`Kernel`]s compute the same integers:
//! - [`Kernel::Amx`]: AMX's tile product, 16 rows by 16 outputs by 64 inputs per instruction
//!   (Sapphire Rapids and later), with the rest of the pass on AVX-512;
//! - [`Kernel::Avx512Vnni`] and [`Kernel::AvxVnni`]: `vpdpbusd` multiplies unsigned by signed
//!   bytes, so activations are offset by 128 and `128 · Σ_k q[n][k]` is taken off after (the
//!   tile product too);
//! - [`Kernel::Avx2`]: `vpmaddubsw` on `|a|` and `q · sign(a)` (whose pair sums cannot
//!   saturate i16 because both stay within ±127), then `vpmaddwd` into i32;
//! - [`Kernel::Portable`]: plain Rust, the reference the tests hold the others to.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::math::{dispatched, min_max, round_to_i32};

/// Outputs per packed block: sixteen i32 lanes, one 512-bit register.
const LANES: usize = 16;
/// Outputs per register tile: four blocks.
const GROUP: usize = 4 * LANES;
/// Rows (tokens) per register tile of the AVX kernels.
const ROWS: usize = 4;
/// Rows per call of [`Kernel::tile`]: one AMX tile; the AVX kernels take them [`ROWS`] at a
/// time.
const TILE_ROWS: usize = 16;
/// An accumulator of [`Kernel::tile`]: `TILE_ROWS` rows of a [`GROUP`] of outputs.
type Acc = [[i32; GROUP]; TILE_ROWS];
/// Products at least this large (multiply-adds: about 6 µs on one core) are split over the
/// thread pool; below, even a hand-off to a thread that is awake costs about what the second
/// core saves. The encoder runs a split pass inside the pool, so a split is a `join` with a
/// thread that is still spinning, not a wake-up.
const PARALLEL_MIN: usize = 1 << 20;

/// The instruction set a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX's 8-bit tile product, with AVX-512 (and VNNI) for the rest.
    Amx,
    /// AVX-512 with VNNI: `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
    /// AVX-VNNI: `vpdpbusd` on 256-bit registers.
    AvxVnni,
    /// AVX2: `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// Plain Rust, any CPU.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs, detected once.
    pub fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| Self::supported()[0])
    }

    /// Every kernel this CPU runs, fastest first (the tests run each against the reference).
    pub fn supported() -> Vec<Kernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            // Each kernel also runs the f32 routines of `math`, compiled for AVX-512
            // (F, BW, VL, DQ) or for AVX2 + FMA: it needs those too.
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if avx2
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                if x86::amx_usable() {
                    out.push(Kernel::Amx);
                }
                out.push(Kernel::Avx512Vnni);
            }
            if avx2 && std::arch::is_x86_feature_detected!("avxvnni") {
                out.push(Kernel::AvxVnni);
            }
            if avx2 {
                out.push(Kernel::Avx2);
            }
        }
        out.push(Kernel::Portable);
        out
    }

    /// A short name for logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx-int8",
            Kernel::Avx512Vnni => "avx512-vnni",
            Kernel::AvxVnni => "avx-vnni",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Whether the kernel wants activations offset to unsigned bytes (`vpdpbusd`).
    fn offset(self) -> bool {
        matches!(self, Kernel::Amx | Kernel::Avx512Vnni | Kernel::AvxVnni)
    }

    /// `acc[r][j] = Σ_k a[r][k] · w[j][k]` for `rows` (at most [`TILE_ROWS`]) rows of `a`
    /// (stride `kp` bytes) and the [`GROUP`] outputs whose packed blocks start at `w`.
    fn tile(self, rows: usize, a: &[u8], kp: usize, w: &[i8], acc: &mut Acc) {
        assert!(rows <= TILE_ROWS && a.len() >= (rows - 1) * kp + kp);
        assert!(w.len() >= GROUP * kp);
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Amx && kp.is_multiple_of(x86::AMX_K) {
            // SAFETY: `Amx` comes from `supported()`, which saw AMX usable in this process,
            // and the slices hold `rows` rows of `kp` bytes and four packed blocks (asserted
            // above).
            unsafe { x86::amx(rows, a.as_ptr(), kp, w.as_ptr(), acc) };
            return;
        }
        // The AVX kernels (and AMX's for inputs that fill no whole tile, which only the
        // narrow products of inputs quantized apart have) take four rows at a time.
        for r0 in (0..rows).step_by(ROWS) {
            let (a, acc) = (&a[r0 * kp..], &mut acc[r0..]);
            macro_rules! by_rows {
                ($f:ident) => {
                    // SAFETY: `supported()` saw the CPU features this kernel was compiled for
                    // (a `Kernel` other than `Portable` only comes from there), and the
                    // slices hold the rows of `kp` bytes, their accumulators and four packed
                    // blocks (asserted above).
                    unsafe {
                        match rows - r0 {
                            1 => x86::$f::<1>(a.as_ptr(), kp, w.as_ptr(), acc),
                            2 => x86::$f::<2>(a.as_ptr(), kp, w.as_ptr(), acc),
                            3 => x86::$f::<3>(a.as_ptr(), kp, w.as_ptr(), acc),
                            _ => x86::$f::<4>(a.as_ptr(), kp, w.as_ptr(), acc),
                        }
                    }
                };
            }
            match self {
                #[cfg(target_arch = "x86_64")]
                Kernel::Amx | Kernel::Avx512Vnni => by_rows!(avx512_vnni),
                #[cfg(target_arch = "x86_64")]
                Kernel::AvxVnni => by_rows!(avx_vnni),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => by_rows!(avx2),
                #[cfg(not(target_arch = "x86_64"))]
                Kernel::Amx | Kernel::Avx512Vnni | Kernel::AvxVnni | Kernel::Avx2 => {
                    portable((rows - r0).min(ROWS), a, kp, w, acc)
                }
                Kernel::Portable => portable((rows - r0).min(ROWS), a, kp, w, acc),
            }
        }
    }
}

/// The reference: what every kernel computes, one multiply-add at a time.
fn portable(rows: usize, a: &[u8], kp: usize, w: &[i8], acc: &mut [[i32; GROUP]]) {
    let steps = kp / 4;
    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
        let a = &a[r * kp..(r + 1) * kp];
        for (j, out) in acc.iter_mut().enumerate() {
            let block = &w[(j / LANES) * steps * 64..];
            let lane = j % LANES;
            *out = (0..kp)
                .map(|k| i32::from(a[k] as i8) * i32::from(block[(k / 4) * 64 + lane * 4 + k % 4]))
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD kernels. Each computes a tile of `R` rows by one [`GROUP`](super::GROUP) of
    //! outputs: `a` points at row 0 of the quantized activations (rows `kp` bytes apart), `w`
    //! at the group's first packed block (blocks `kp · 16` bytes apart).

    use std::arch::x86_64::*;

    use std::arch::asm;
    use std::sync::OnceLock;

    use super::{Acc, GROUP, LANES};

    /// Inputs per AMX tile product: 64 bytes a row of the left tile, 16 four-byte steps of
    /// the right.
    pub(super) const AMX_K: usize = 64;

    /// Whether this CPU has AMX's 8-bit tile product and the kernel lets this process use
    /// it, asked once. Linux hands out the tile registers' 8 KB of state on request only
    /// (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); the permission holds for every thread of the
    /// process.
    pub(super) fn amx_usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
            let leaf7 = __cpuid_count(7, 0);
            if leaf7.edx & (0b11 << 24) != 0b11 << 24 {
                return false;
            }
            request_tile_data()
        })
    }

    #[cfg(target_os = "linux")]
    fn request_tile_data() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a system call with two integers; it changes which CPU state the kernel
        // saves for this process, nothing in its memory.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn request_tile_data() -> bool {
        false
    }

    /// The 64-byte operand of `ldtilecfg`: palette 1, then each tile's bytes per row and rows.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    impl TileConfig {
        /// Tiles 0-3 accumulate `rows` rows of the four blocks of a group, tile 4 holds
        /// `rows` rows of 64 activation bytes, tiles 5-7 hold 16 steps of one block.
        fn new(rows: usize) -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                // Every tile is 64 bytes a row (u16 at 16 + 2t; the high byte stays 0).
                c[16 + 2 * t] = 64;
                c[48 + t] = if t < 5 { rows as u8 } else { 16 };
            }
            Self(c)
        }
    }

    /// [`avx512_vnni`]'s integers for up to 16 rows at once, on AMX: per 64 inputs, one load
    /// of the rows' bytes and, per block of 16 outputs, one load of its 16 steps and one
    /// `tdpbusd` (16 × 16 × 64 multiply-adds). The tiles are configured and released on
    /// every call, so no thread holds tile state between products.
    ///
    /// # Safety
    /// AMX must be usable ([`amx_usable`]); `a` holds `rows` (1..=16) rows of `kp` bytes,
    /// `kp` a multiple of [`AMX_K`], and `w` four packed blocks of `kp · 16` bytes.
    pub(super) unsafe fn amx(rows: usize, a: *const u8, kp: usize, w: *const i8, acc: &mut Acc) {
        let config = TileConfig::new(rows);
        let block = kp * LANES;
        // SAFETY (whole body): the caller guarantees the rows, blocks and AMX; each load
        // reads `rows` rows of 64 bytes `kp` apart, or 16 rows of 64 bytes 64 apart inside a
        // block; the stores write `rows` rows of 64 bytes, 256 apart, inside `acc`.
        unsafe {
            asm!(
                "ldtilecfg [{c}]",
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                c = in(reg) config.0.as_ptr(),
                options(nostack, readonly),
            );
            for s in 0..kp / AMX_K {
                let w = w.add(s * AMX_K * LANES);
                asm!(
                    "tileloadd tmm4, [{a} + {kp}*1]",
                    "tileloadd tmm5, [{w0} + {row}*1]",
                    "tdpbusd tmm0, tmm4, tmm5",
                    "tileloadd tmm6, [{w1} + {row}*1]",
                    "tdpbusd tmm1, tmm4, tmm6",
                    "tileloadd tmm7, [{w2} + {row}*1]",
                    "tdpbusd tmm2, tmm4, tmm7",
                    "tileloadd tmm5, [{w3} + {row}*1]",
                    "tdpbusd tmm3, tmm4, tmm5",
                    a = in(reg) a.add(s * AMX_K),
                    kp = in(reg) kp,
                    w0 = in(reg) w,
                    w1 = in(reg) w.add(block),
                    w2 = in(reg) w.add(2 * block),
                    w3 = in(reg) w.add(3 * block),
                    row = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
            let out = acc.as_mut_ptr().cast::<i32>();
            asm!(
                "tilestored [{o0} + {row}*1], tmm0",
                "tilestored [{o1} + {row}*1], tmm1",
                "tilestored [{o2} + {row}*1], tmm2",
                "tilestored [{o3} + {row}*1], tmm3",
                "tilerelease",
                o0 = in(reg) out,
                o1 = in(reg) out.add(LANES),
                o2 = in(reg) out.add(2 * LANES),
                o3 = in(reg) out.add(3 * LANES),
                row = in(reg) GROUP * 4,
                options(nostack),
            );
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn avx512_vnni<const R: usize>(
        a: *const u8,
        kp: usize,
        w: *const i8,
        acc: &mut [[i32; GROUP]],
    ) {
        let block = kp * LANES;
        let mut sum = [[_mm512_setzero_si512(); 4]; R];
        for s in 0..kp / 4 {
            // SAFETY (whole body): the caller guarantees R rows of kp bytes at `a` and four
            // blocks of kp·16 bytes at `w`; every offset below stays inside them.
            unsafe {
                let wv: [__m512i; 4] =
                    std::array::from_fn(|b| _mm512_loadu_si512(w.add(b * block + s * 64).cast()));
                for (r, sum) in sum.iter_mut().enumerate() {
                    let av =
                        _mm512_set1_epi32(a.add(r * kp + s * 4).cast::<i32>().read_unaligned());
                    for b in 0..4 {
                        sum[b] = _mm512_dpbusd_epi32(sum[b], av, wv[b]);
                    }
                }
            }
        }
        for (r, sum) in sum.iter().enumerate() {
            for (b, v) in sum.iter().enumerate() {
                // SAFETY: acc[r] holds GROUP = 4 · 16 lanes.
                unsafe { _mm512_storeu_si512(acc[r][b * LANES..].as_mut_ptr().cast(), *v) };
            }
        }
    }

    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn avx_vnni<const R: usize>(
        a: *const u8,
        kp: usize,
        w: *const i8,
        acc: &mut [[i32; GROUP]],
    ) {
        let block = kp * LANES;
        for b in 0..4 {
            let mut sum = [[_mm256_setzero_si256(); 2]; R];
            for s in 0..kp / 4 {
                // SAFETY: as in `avx512_vnni`.
                unsafe {
                    let p = w.add(b * block + s * 64);
                    let lo = _mm256_loadu_si256(p.cast());
                    let hi = _mm256_loadu_si256(p.add(32).cast());
                    for (r, sum) in sum.iter_mut().enumerate() {
                        let av =
                            _mm256_set1_epi32(a.add(r * kp + s * 4).cast::<i32>().read_unaligned());
                        sum[0] = _mm256_dpbusd_avx_epi32(sum[0], av, lo);
                        sum[1] = _mm256_dpbusd_avx_epi32(sum[1], av, hi);
                    }
                }
            }
            for (r, sum) in sum.iter().enumerate() {
                for (h, v) in sum.iter().enumerate() {
                    // SAFETY: acc[r] holds GROUP lanes; b·16 + h·8 + 8 <= GROUP.
                    unsafe {
                        _mm256_storeu_si256(acc[r][b * LANES + h * 8..].as_mut_ptr().cast(), *v)
                    };
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2<const R: usize>(
        a: *const u8,
        kp: usize,
        w: *const i8,
        acc: &mut [[i32; GROUP]],
    ) {
        let block = kp * LANES;
        let ones = _mm256_set1_epi16(1);
        for b in 0..4 {
            let mut sum = [[_mm256_setzero_si256(); 2]; R];
            for s in 0..kp / 4 {
                // SAFETY: as in `avx512_vnni`.
                unsafe {
                    let p = w.add(b * block + s * 64);
                    let lo = _mm256_loadu_si256(p.cast());
                    let hi = _mm256_loadu_si256(p.add(32).cast());
                    for (r, sum) in sum.iter_mut().enumerate() {
                        let av =
                            _mm256_set1_epi32(a.add(r * kp + s * 4).cast::<i32>().read_unaligned());
                        let abs = _mm256_abs_epi8(av);
                        for (h, wv) in [lo, hi].into_iter().enumerate() {
                            let pairs = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(wv, av));
                            sum[h] = _mm256_add_epi32(sum[h], _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
            }
            for (r, sum) in sum.iter().enumerate() {
                for (h, v) in sum.iter().enumerate() {
                    // SAFETY: acc[r] holds GROUP lanes; b·16 + h·8 + 8 <= GROUP.
                    unsafe {
                        _mm256_storeu_si256(acc[r][b * LANES + h * 8..].as_mut_ptr().cast(), *v)
                    };
                }
            }
        }
    }
}

/// The inputs a [`QLinear`] quantizes apart, as quantized for one product: bytes (rows of
/// `apart.kp`), each row's scale and zero point; empty without such inputs.
struct Second<'a> {
    a: &'a [u8],
    sa: &'a [f32],
    zero: &'a [i32],
}

/// A dense layer `y = x · wᵀ + b` with 8-bit weights.
#[derive(Debug)]
pub struct QLinear {
    /// Outputs.
    n: usize,
    /// Inputs.
    k: usize,
    /// Inputs rounded up to a multiple of 4 (zero weights in the padding).
    kp: usize,
    /// Packed weights, `[n / 16][kp / 4][16][4]`, outputs rounded up to a [`GROUP`].
    w: Vec<i8>,
    /// Per output: the weight scale.
    scale: Vec<f32>,
    /// Per output: `Σ_k q[n][k]`, for the zero points and the unsigned kernels' offset.
    colsum: Vec<i32>,
    /// The bias, zero-padded to the packed outputs.
    bias_padded: Vec<f32>,
    /// Per input: what it is multiplied by before quantizing (the weights were scaled up by
    /// its inverse; see the encoder's calibration), or nothing.
    smooth: Option<Vec<f32>>,
    /// Inputs quantized apart from the others (see [`QLinear::with_apart`]): their indices,
    /// in the order of `apart`'s inputs.
    apart_inputs: Vec<usize>,
    /// Their product: a layer of its own over just those inputs, with its own per-row
    /// range (their columns of `w` are zero).
    apart: Option<Box<QLinear>>,
    kernel: Kernel,
}

impl QLinear {
    /// Quantizes a weight in PyTorch's `(out, in)` layout, row-major, with its bias.
    pub fn new(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> Self {
        Self::with_apart(w, n, k, bias, &[])
    }

    /// As [`QLinear::new`], with the inputs `apart` quantized apart from the others: a
    /// second, narrow product over just them, each row over their own range, is added to
    /// the main one. They no longer widen the main product's range, so every other input
    /// gets a finer step.
    pub fn with_apart(w: &[f32], n: usize, k: usize, bias: Vec<f32>, apart: &[usize]) -> Self {
        assert!(w.len() == n * k && bias.len() == n, "shape mismatch");
        assert!(apart.iter().all(|&i| i < k), "input out of range");
        let kp = k.div_ceil(4) * 4;
        let np = n.div_ceil(GROUP) * GROUP;
        let steps = kp / 4;
        let mut packed = vec![0i8; np * kp];
        let mut scale = vec![0f32; np];
        let mut colsum = vec![0i32; np];
        let mut apart_w = vec![0f32; n * apart.len()];
        let mut row = vec![0f32; k];
        for o in 0..n {
            row.copy_from_slice(&w[o * k..(o + 1) * k]);
            for (j, &i) in apart.iter().enumerate() {
                apart_w[o * apart.len() + j] = std::mem::take(&mut row[i]);
            }
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            scale[o] = s;
            let base = (o / LANES) * steps * 64 + (o % LANES) * 4;
            let mut total = 0i32;
            for (i, &v) in row.iter().enumerate() {
                let q = (v / s).round().clamp(-127.0, 127.0) as i8;
                total += i32::from(q);
                packed[base + (i / 4) * 64 + i % 4] = q;
            }
            colsum[o] = total;
        }
        Self {
            n,
            k,
            kp,
            w: packed,
            scale,
            colsum,
            bias_padded: {
                let mut b = bias;
                b.resize(np, 0.0);
                b
            },
            smooth: None,
            apart_inputs: apart.to_vec(),
            apart: (!apart.is_empty())
                .then(|| Box::new(Self::new(&apart_w, n, apart.len(), vec![0.0; n]))),
            kernel: Kernel::best(),
        }
    }

    /// Inputs divided by `factors` before quantizing: `new` was given weights whose input
    /// columns were multiplied by them, so the product is unchanged.
    pub fn smoothed(mut self, factors: &[f32]) -> Self {
        assert_eq!(factors.len(), self.k, "one factor per input");
        self.smooth = Some(factors.iter().map(|f| 1.0 / f).collect());
        self
    }

    /// The same layer on another kernel this CPU runs (tests and benchmarks compare them).
    pub(crate) fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
        if let Some(apart) = &mut self.apart {
            apart.set_kernel(kernel);
        }
    }

    /// The same layer on another kernel (tests compare kernels on one layer).
    #[cfg(test)]
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.set_kernel(kernel);
        self
    }

    /// `x` is `m` rows of `k` inputs; returns `m` rows of `n` outputs. With `parallel`, a
    /// product big enough is split over the thread pool.
    pub fn forward(&self, x: &[f32], m: usize, parallel: bool) -> Vec<f32> {
        let n = self.n;
        let (a, sa, zero, apart_x) = self.quantize(x, m);
        // The inputs quantized apart: their own bytes, scales and zero points per row.
        let (a2, sa2, zero2, _) = match &self.apart {
            Some(apart) => apart.quantize(&apart_x, m),
            None => Default::default(),
        };
        let second = Second {
            a: &a2,
            sa: &sa2,
            zero: &zero2,
        };
        let groups = n.div_ceil(GROUP);
        // Big enough products go to both cores as two halves of the outputs: one hand-off
        // per product.
        let halves = if parallel && m * groups * GROUP * self.kp >= PARALLEL_MIN && groups > 1 {
            rayon::current_num_threads().clamp(1, groups)
        } else {
            1
        };
        let per = groups.div_ceil(halves);
        let ranges: Vec<(usize, usize)> = (0..groups)
            .step_by(per)
            .map(|g| (g, (g + per).min(groups)))
            .collect();
        let part = |&(g0, g1): &(usize, usize)| {
            let mut out = vec![0f32; m * (g1 - g0) * GROUP];
            outputs(
                self.kernel,
                self,
                &a,
                &sa,
                &zero,
                &second,
                m,
                g0,
                g1,
                &mut out,
            );
            out
        };
        let parts: Vec<Vec<f32>> = if ranges.len() > 1 {
            ranges.par_iter().map(part).collect()
        } else {
            ranges.iter().map(part).collect()
        };
        if parts.len() == 1 && groups * GROUP == n {
            // One part with no padded outputs is already `y`.
            return parts.into_iter().next().unwrap_or_default();
        }
        let mut y = vec![0f32; m * n];
        for (&(g0, g1), part) in ranges.iter().zip(&parts) {
            let (o0, o1) = (g0 * GROUP, (g1 * GROUP).min(n));
            let width = (g1 - g0) * GROUP;
            for r in 0..m {
                y[r * n + o0..r * n + o1].copy_from_slice(&part[r * width..r * width + o1 - o0]);
            }
        }
        y
    }

    /// Each row to bytes in [-127, 127] over its range, padded to `kp`, and offset by 128
    /// for the kernels that want unsigned bytes. Returns the bytes, each row's scale, each
    /// row's zero point (`x ≈ scale · (byte + zero)`) and the inputs quantized apart,
    /// smoothed, `[row][apart]` (zero in the bytes).
    fn quantize(&self, x: &[f32], m: usize) -> (Vec<u8>, Vec<f32>, Vec<i32>, Vec<f32>) {
        let shift: u8 = if self.kernel.offset() { 128 } else { 0 };
        let mut a = vec![shift; m * self.kp];
        let mut scales = vec![0f32; m];
        let mut zeros = vec![0i32; m];
        let mut apart = vec![0f32; m * self.apart_inputs.len()];
        let smooth = self.smooth.as_deref().unwrap_or(&[]);
        quantize_rows(
            self.kernel,
            &x[..m * self.k],
            self.k,
            self.kp,
            i32::from(shift),
            smooth,
            &self.apart_inputs,
            &mut a,
            &mut scales,
            &mut zeros,
            &mut apart,
        );
        (a, scales, zeros, apart)
    }
}

dispatched! {
    /// Groups `g0..g1` of `q`'s outputs for every row into `out`, `(m, (g1 - g0) · GROUP)`,
    /// in f32 with the bias added.
    #[allow(clippy::too_many_arguments)]
    fn outputs(
        q: &QLinear,
        a: &[u8],
        sa: &[f32],
        zero: &[i32],
        second: &Second,
        m: usize,
        g0: usize,
        g1: usize,
        out: &mut [f32],
    ) {
        let kp = q.kp;
        let width = (g1 - g0) * GROUP;
        let shift = if q.kernel.offset() { 128 } else { 0 };
        let mut acc: Acc = [[0i32; GROUP]; TILE_ROWS];
        let mut acc2: Acc = [[0i32; GROUP]; TILE_ROWS];
        for g in g0..g1 {
            let w = &q.w[g * GROUP * kp..(g + 1) * GROUP * kp];
            let o = g * GROUP;
            let (colsum, scale) = (&q.colsum[o..o + GROUP], &q.scale[o..o + GROUP]);
            let bias = &q.bias_padded[o..o + GROUP];
            for r0 in (0..m).step_by(TILE_ROWS) {
                let rows = (m - r0).min(TILE_ROWS);
                q.kernel.tile(rows, &a[r0 * kp..], kp, w, &mut acc);
                if let Some(p) = &q.apart {
                    let kp2 = p.kp;
                    let w2 = &p.w[g * GROUP * kp2..(g + 1) * GROUP * kp2];
                    p.kernel
                        .tile(rows, &second.a[r0 * kp2..], kp2, w2, &mut acc2);
                }
                for (r, acc) in (r0..).zip(acc.iter().take(rows)) {
                    let (z, s) = (zero[r] as f32, sa[r]);
                    let at = r * width + (g - g0) * GROUP;
                    let dst = &mut out[at..at + GROUP];
                    for ((((d, &v), &c), &sc), &b) in
                        dst.iter_mut().zip(acc).zip(colsum).zip(scale).zip(bias)
                    {
                        // `v - shift · c` is exact and the same whichever kernel summed.
                        *d = ((v - shift * c) as f32 + z * c as f32) * s * sc + b;
                    }
                    if let Some(p) = &q.apart {
                        // The inputs quantized apart, added in the same order everywhere.
                        let (z2, s2) = (second.zero[r] as f32, second.sa[r]);
                        let (colsum2, scale2) = (&p.colsum[o..o + GROUP], &p.scale[o..o + GROUP]);
                        for (((d, &v), &c), &sc) in
                            dst.iter_mut().zip(&acc2[r - r0]).zip(colsum2).zip(scale2)
                        {
                            *d += ((v - shift * c) as f32 + z2 * c as f32) * s2 * sc;
                        }
                    }
                }
            }
        }
    }
}

dispatched! {
    /// Rows of `k` values in `x` (each first multiplied by `smooth`, when given) to bytes in
    /// `a` (rows `kp` apart, offset by `shift`), with each row's scale and zero point; the
    /// inputs `keep` go to `kept` (`[row][keep]`) instead, and count as zero there.
    #[allow(clippy::too_many_arguments)]
    fn quantize_rows(
        x: &[f32],
        k: usize,
        kp: usize,
        shift: i32,
        smooth: &[f32],
        keep: &[usize],
        a: &mut [u8],
        scales: &mut [f32],
        zeros: &mut [i32],
        kept: &mut [f32],
    ) {
        let copy = !smooth.is_empty() || !keep.is_empty();
        let mut smoothed = vec![0f32; if copy { k } else { 0 }];
        for (r, row) in x.chunks_exact(k).enumerate() {
            let row = if copy {
                if smooth.is_empty() {
                    smoothed.copy_from_slice(row);
                } else {
                    for ((d, v), f) in smoothed.iter_mut().zip(row).zip(smooth) {
                        *d = v * f;
                    }
                }
                for (d, &i) in kept[r * keep.len()..].iter_mut().zip(keep) {
                    *d = std::mem::take(&mut smoothed[i]);
                }
                &smoothed[..]
            } else {
                row
            };
            let (lo, hi) = min_max(row);
            let max = lo.abs().max(hi.abs());
            if max == 0.0 || !max.is_finite() {
                continue;
            }
            // A row whose values barely differ (or one value) is quantized about zero.
            let (scale, zero) = if hi - lo > max * 1e-3 {
                let s = (hi - lo) / 254.0;
                (s, (lo / s).round() as i32 + 127)
            } else {
                (max / 127.0, 0)
            };
            scales[r] = scale;
            zeros[r] = zero;
            let inv = 1.0 / scale;
            for (d, &v) in a[r * kp..r * kp + k].iter_mut().zip(row) {
                // Within ±2^21 for `round_to_i32`; the clamp below does the rest.
                let v = (v * inv).clamp(-2e6, 2e6);
                let q = round_to_i32(v) - zero;
                *d = (q.clamp(-127, 127) + shift) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Every kernel this CPU runs gives the portable kernel's result bit for bit (the integer
    /// sums are exact, and the conversion back is shared), on shapes that leave partial tiles
    /// and partial groups, inputs not a multiple of 4, and rows with outliers and zeros.
    #[test]
    fn every_kernel_this_cpu_runs_matches_the_reference() {
        let mut rng = StdRng::seed_from_u64(7);
        let kernels = Kernel::supported();
        eprintln!(
            "kernels on this CPU: {:?}",
            kernels.iter().map(|k| k.name()).collect::<Vec<_>>()
        );
        for (m, n, k) in [
            (1, 16, 4),
            (3, 70, 37),
            (5, 64, 384),
            (9, 200, 130),
            (20, 384, 1536),
            (33, 100, 256),
        ] {
            let w = random(&mut rng, n * k);
            let bias = random(&mut rng, n);
            let mut x = random(&mut rng, m * k);
            x[0] = 40.0; // an outlier, as BERT's hidden states have
            if m > 2 {
                x[k..2 * k].fill(0.0); // an all-zero row
            }
            let reference = QLinear::new(&w, n, k, bias.clone())
                .with_kernel(Kernel::Portable)
                .forward(&x, m, false);
            for &kernel in &kernels {
                let y = QLinear::new(&w, n, k, bias.clone())
                    .with_kernel(kernel)
                    .forward(&x, m, false);
                assert_eq!(y, reference, "{} at {m}x{n}x{k}", kernel.name());
            }
        }
    }

    /// With inputs quantized apart (and smoothing), every kernel still gives the reference's
    /// bits, and the outlier inputs no longer coarsen the others: closer to the f32 product
    /// than the same layer without them.
    #[test]
    fn inputs_quantized_apart_agree_on_every_kernel_and_come_closer() {
        let mut rng = StdRng::seed_from_u64(13);
        let (m, n, k) = (7, 130, 96);
        let w = random(&mut rng, n * k);
        let bias = random(&mut rng, n);
        let mut x = random(&mut rng, m * k);
        for r in 0..m {
            x[r * k + 5] = 30.0 + r as f32; // outlier channels, as after GELU
            x[r * k + 70] = -25.0;
        }
        let factors: Vec<f32> = (0..k).map(|i| 1.0 + (i % 3) as f32).collect();
        let smoothed_w: Vec<f32> = (0..n * k).map(|j| w[j] * factors[j % k]).collect();
        let layer = |apart: &[usize], kernel| {
            QLinear::with_apart(&smoothed_w, n, k, bias.clone(), apart)
                .smoothed(&factors)
                .with_kernel(kernel)
                .forward(&x, m, false)
        };
        let reference = layer(&[5, 70], Kernel::Portable);
        for kernel in Kernel::supported() {
            assert_eq!(layer(&[5, 70], kernel), reference, "{}", kernel.name());
        }
        let plain = layer(&[], Kernel::Portable);
        let exact: Vec<f32> = (0..m * n)
            .map(|j| {
                let (r, o) = (j / n, j % n);
                (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum::<f32>() + bias[o]
            })
            .collect();
        let error = |y: &[f32]| -> f32 { y.iter().zip(&exact).map(|(a, b)| (a - b).powi(2)).sum() };
        assert!(
            error(&reference) * 4.0 < error(&plain),
            "apart {} against {}",
            error(&reference),
            error(&plain)
        );
    }

    /// The 8-bit product stays close to the f32 one it stands for.
    #[test]
    fn close_to_the_f32_product() {
        let mut rng = StdRng::seed_from_u64(11);
        let (m, n, k) = (6, 96, 384);
        let w = random(&mut rng, n * k);
        let bias = random(&mut rng, n);
        let x = random(&mut rng, m * k);
        let y = QLinear::new(&w, n, k, bias.clone()).forward(&x, m, false);
        for r in 0..m {
            let exact: Vec<f32> = (0..n)
                .map(|o| (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum::<f32>() + bias[o])
                .collect();
            let got = &y[r * n..(r + 1) * n];
            let dot: f32 = exact.iter().zip(got).map(|(a, b)| a * b).sum();
            let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
            let cosine = dot / (norm(&exact) * norm(got));
            assert!(cosine > 0.9995, "row {r}: cosine {cosine}");
        }
    }
}
