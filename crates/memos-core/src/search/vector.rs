//! [`VectorIndex`]: the dense retriever. Each user's vectors live in one contiguous matrix in
//! RAM, loaded from the store on the user's first search and kept current by the service's
//! writes, and are scanned exactly.
//!
//! Rows are stored as int8 with one scale per row (384 bytes for a 384-dimension model
//! instead of 1,536): a quarter of the memory, a faster scan, and cosines within about 0.003
//! of the float ones, far below the gaps that decide a ranking. The store keeps the floats.
//!
//! A scan rather than HNSW: results are exact and reproducible, deletes are trivial,
//! and there is no index build, which takes minutes on 2 cores for graph indexes at 100k.
//!
//! A big user's scan waits on memory (38 MB of int8 rows at 100k), so above
//! `search.exact_scan_rows` a search runs in two stages: every row is first scored on a
//! 1-bit code (48 bytes for 384 dimensions: the sign of each value minus the user's mean
//! vector, against the query's values in 4 bits), and only the best
//! [`rescore_rows`] of them (4%) are scored again on their int8 values, which decide the
//! ranking. The codes are an approximation, so the final list can miss a row the exact scan
//! would have kept; `memos bench retrieval` prints how often on real embeddings.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use super::{ACTIVE, Allowed, TimeRange};
use crate::model::{Millis, Scope};
use crate::store::StoredVector;

/// One user's vectors.
#[derive(Debug, Default)]
pub struct UserVectors {
    /// Shared with `row`, so each id is allocated once.
    ids: Vec<Arc<str>>,
    /// The ids' bytes in all, kept as rows come and go so [`Self::bytes`] costs nothing
    /// (caches weigh a user after every write).
    id_bytes: usize,
    /// `ids.len() × dim` int8 values, row-major.
    data: Vec<i8>,
    /// Per row: the factor that turns the row's int8 values back into its floats.
    scales: Vec<f32>,
    /// Per row: `memory_time`, or `create_time` when there is none.
    times: Vec<Millis>,
    /// Per row: when the memory was archived, [`ACTIVE`] while it is not. Archived rows
    /// stay for as-of searches ([`super::current_at`]).
    archived: Vec<Millis>,
    row: HashMap<Arc<str>, usize>,
    dim: usize,
    /// `words` 64-bit words per row: bit `i` of a row is set when its value `i` is above
    /// `center[i]` (see [`Codes`]).
    codes: Codes,
}

/// The 1-bit codes of a user's rows, for the first stage of a big user's search.
///
/// Embeddings share a large common component (every e5 cosine is above 0.7), so the signs
/// of the raw values say little; the signs of each row minus the user's mean say where it
/// differs from the others. The mean is taken again whenever the user has doubled since it
/// was last taken (all codes then recomputed), so the cost per write stays constant.
#[derive(Debug, Default)]
struct Codes {
    /// 64-bit words per row.
    words: usize,
    /// Rows in blocks of [`LANES`], word-major inside a block (word `c` of a block's eight
    /// rows side by side, see [`Codes::at`]), so one 512-bit load holds the same word of
    /// eight rows and the code pass sums eight rows per register with no horizontal adds.
    /// A last block's unused rows stay zero.
    bits: Vec<u64>,
    /// Per row: the mean distance of its values from `center`, which turns a sum of signs
    /// back into the size of a dot product.
    spread: Vec<f32>,
    /// Per row: how many of its bits are set.
    ones: Vec<u16>,
    center: Vec<f32>,
    /// Rows when `center` was last taken.
    centered_at: usize,
}

/// Rows per block of [`Codes::bits`].
const LANES: usize = 8;

impl Codes {
    /// Where word `c` of row `r` sits in `bits`.
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> usize {
        (r / LANES) * LANES * self.words + c * LANES + r % LANES
    }

    /// Words `bits` needs to hold `rows` rows: whole blocks.
    fn len_for(&self, rows: usize) -> usize {
        rows.div_ceil(LANES) * LANES * self.words
    }
}

/// Rows below which a user's mean is not taken yet (its codes use a zero center).
const CENTER_MIN_ROWS: usize = 64;

/// The share of a big user's rows that the second stage scores exactly (at least
/// [`RESCORE_PER_RESULT`] per result asked for).
const RESCORE_SHARE: usize = 25;

/// Rows rescored per result asked for, at least.
const RESCORE_PER_RESULT: usize = 16;

/// How many of `rows` rows the second stage scores exactly for a search of `k`: the best
/// 1/25 on their codes, and at least 16 per result.
pub fn rescore_rows(k: usize, rows: usize) -> usize {
    (k * RESCORE_PER_RESULT).max(rows / RESCORE_SHARE)
}

/// Symmetric int8 quantization: the largest magnitude maps to 127. Returns the scale.
fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let k = 127.0 / max;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * k).round() as i8;
    }
    max / 127.0
}

/// Integer dot product; 32 lanes at a time so the compiler emits multiply-add instructions.
#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..32 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += *x as i32 * *y as i32;
    }
    s
}

/// The same loop compiled for AVX2: twice the lanes of the x86-64 baseline (SSE2) that a
/// portable build targets.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_portable(a, b)
}

/// The integer dot product, with the widest instructions this CPU has.
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above (the check is a cached load).
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_portable(a, b)
}

/// Rows per piece of a parallel scan: below this a scan is not worth splitting.
const PAR_ROWS: usize = 16_384;

/// The best `k` rows seen so far: a min-heap whose top is the worst of them.
struct TopK {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn push(&mut self, s: f32, r: usize) {
        if self.heap.len() < self.k {
            self.heap.push(Scored(s, r));
        } else if self.heap.peek().is_some_and(|w| Scored(s, r) < *w) {
            self.heap.pop();
            self.heap.push(Scored(s, r));
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for Scored(s, r) in other.heap {
            self.push(s, r);
        }
        self
    }
}

impl UserVectors {
    /// A user's vectors from the rows the store keeps.
    pub fn from_rows(rows: Vec<StoredVector>) -> Self {
        let mut u = UserVectors::default();
        for r in rows {
            u.load_row(&r.id, r.time, r.archived_at, &r.vector);
        }
        u.finish_load();
        u
    }

    /// Adds a row while loading (no code yet); [`Self::finish_load`] computes the codes.
    pub fn load_row(&mut self, id: &str, time: Millis, archived_at: Option<Millis>, v: &[f32]) {
        self.put(id, time, archived_at, v);
    }

    /// Ends a load of rows by [`Self::load_row`]: one center for all of them, and each
    /// code computed once.
    pub fn finish_load(&mut self) {
        self.recenter();
    }

    /// About how much memory the rows take: the int8 values, the per-row scale and times,
    /// each id (shared by the list and the map) and the map's entry.
    pub fn bytes(&self) -> usize {
        self.data.len()
            + self.codes.bits.len() * 8
            + self.ids.len() * (4 + 4 + 2 + 8 + 8 + 16 + 48)
            + self.id_bytes
    }

    #[cfg(test)]
    fn upsert(&mut self, id: &str, time: Millis, v: &[f32]) {
        self.upsert_as(id, time, None, v);
    }

    /// Adds or replaces a row and keeps the codes current: the center is taken again
    /// whenever the user has doubled since it was last taken.
    pub fn upsert_as(&mut self, id: &str, time: Millis, archived_at: Option<Millis>, v: &[f32]) {
        let Some(r) = self.put(id, time, archived_at, v) else {
            return;
        };
        let n = self.ids.len();
        if n >= CENTER_MIN_ROWS && n >= 2 * self.codes.centered_at {
            self.recenter();
        } else {
            self.encode(r);
        }
    }

    /// Adds or replaces a row's values and times, without its code; its row, or `None`
    /// for a vector of another length.
    fn put(
        &mut self,
        id: &str,
        time: Millis,
        archived_at: Option<Millis>,
        v: &[f32],
    ) -> Option<usize> {
        if self.dim == 0 {
            self.dim = v.len();
            self.codes.words = self.dim.div_ceil(64);
        }
        if v.len() != self.dim {
            tracing::warn!(id, "vector of another length ignored");
            return None;
        }
        let r = match self.row.get(id) {
            Some(&r) => {
                self.times[r] = time;
                self.archived[r] = archived_at.unwrap_or(ACTIVE);
                r
            }
            None => {
                let id: Arc<str> = Arc::from(id);
                let r = self.ids.len();
                self.row.insert(id.clone(), r);
                self.id_bytes += id.len();
                self.ids.push(id);
                self.data.resize((r + 1) * self.dim, 0);
                self.scales.push(0.0);
                self.times.push(time);
                self.archived.push(archived_at.unwrap_or(ACTIVE));
                r
            }
        };
        self.scales[r] = quantize(v, &mut self.data[r * self.dim..(r + 1) * self.dim]);
        Some(r)
    }

    /// Row `r`'s values as floats again.
    fn row_values(&self, r: usize) -> impl Iterator<Item = f32> + '_ {
        let s = self.scales[r];
        self.data[r * self.dim..(r + 1) * self.dim]
            .iter()
            .map(move |&x| x as f32 * s)
    }

    /// Computes row `r`'s code against the current center.
    fn encode(&mut self, r: usize) {
        let codes = &mut self.codes;
        if codes.spread.len() < r + 1 {
            codes.bits.resize(codes.len_for(r + 1), 0);
            codes.spread.resize(r + 1, 0.0);
            codes.ones.resize(r + 1, 0);
        }
        for c in 0..codes.words {
            let at = codes.at(r, c);
            codes.bits[at] = 0;
        }
        let scale = self.scales[r];
        let mut spread = 0.0f32;
        for (i, &x) in self.data[r * self.dim..(r + 1) * self.dim]
            .iter()
            .enumerate()
        {
            let d = x as f32 * scale - codes.center.get(i).copied().unwrap_or(0.0);
            if d > 0.0 {
                let at = codes.at(r, i / 64);
                codes.bits[at] |= 1 << (i % 64);
            }
            spread += d.abs();
        }
        codes.spread[r] = spread / self.dim as f32;
        codes.ones[r] = (0..codes.words)
            .map(|c| codes.bits[codes.at(r, c)].count_ones() as u16)
            .sum();
    }

    /// Takes the mean of every row as the new center (below [`CENTER_MIN_ROWS`], none)
    /// and recomputes every code.
    fn recenter(&mut self) {
        let n = self.ids.len();
        if n < CENTER_MIN_ROWS {
            self.codes.center.clear();
            self.codes.centered_at = 0;
        } else {
            let mut sum = vec![0.0f64; self.dim];
            for r in 0..n {
                for (s, x) in sum.iter_mut().zip(self.row_values(r)) {
                    *s += x as f64;
                }
            }
            self.codes.center = sum.iter().map(|s| (s / n as f64) as f32).collect();
            self.codes.centered_at = n;
        }
        for r in 0..n {
            self.encode(r);
        }
    }

    /// Removes a memory's row (nothing when it has none).
    pub fn delete(&mut self, id: &str) {
        let Some(r) = self.row.remove(id) else { return };
        self.id_bytes -= id.len();
        // Swap-remove keeps the matrix dense; the moved row gets its new index.
        let last = self.ids.len() - 1;
        if r != last {
            let (d, moved) = (self.dim, self.ids[last].clone());
            self.data.copy_within(last * d..(last + 1) * d, r * d);
            self.ids.swap(r, last);
            self.times.swap(r, last);
            self.archived.swap(r, last);
            self.scales.swap(r, last);
            for c in 0..self.codes.words {
                let (to, from) = (self.codes.at(r, c), self.codes.at(last, c));
                self.codes.bits[to] = self.codes.bits[from];
            }
            self.codes.spread.swap(r, last);
            self.codes.ones.swap(r, last);
            self.row.insert(moved, r);
        }
        self.ids.pop();
        self.times.pop();
        self.archived.pop();
        self.scales.pop();
        self.data.truncate(last * self.dim);
        // The last row's words are zeroed: a block's unused rows stay zero.
        for c in 0..self.codes.words {
            let at = self.codes.at(last, c);
            self.codes.bits[at] = 0;
        }
        self.codes.bits.truncate(self.codes.len_for(last));
        self.codes.spread.pop();
        self.codes.ones.pop();
    }

    /// Bytes held, roughly: what `memos bench load` divides by the memory count.
    pub fn heap_bytes(&self) -> usize {
        let per_id: usize = self.ids.iter().map(|i| i.len() + 16).sum();
        self.data.capacity()
            + self.scales.capacity() * 4
            + self.codes.bits.capacity() * 8
            + self.codes.spread.capacity() * 4
            + self.codes.ones.capacity() * 2
            + self.times.capacity() * 8
            + self.archived.capacity() * 8
            + self.ids.capacity() * 16
            + self.row.capacity() * 24
            + per_id
    }

    /// Marks a row archived at `at`, or active again with `None`.
    fn set_archived(&mut self, id: &str, at: Option<Millis>) {
        if let Some(&r) = self.row.get(id) {
            self.archived[r] = at.unwrap_or(ACTIVE);
        }
    }

    /// Whether row `r` may answer a search over `time`.
    fn eligible(&self, r: usize, time: TimeRange) -> bool {
        super::row_eligible(time, self.times[r], self.archived[r])
    }

    /// How many vectors the user has.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the user has none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` rows most similar to `query`, best first, as (memory id, cosine), by an
    /// exact scan. Rows outside `time` and rows outside `allowed` (when given) are skipped.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        time: TimeRange,
        allowed: Option<Allowed<'_>>,
    ) -> Vec<(String, f32)> {
        self.search_with(query, k, time, allowed, usize::MAX)
    }

    /// [`Self::search`], in two stages when the user has more than `exact_rows` rows and
    /// the search is not narrowed to a few of them (see the module's comment).
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        time: TimeRange,
        allowed: Option<Allowed<'_>>,
        exact_rows: usize,
    ) -> Vec<(String, f32)> {
        if self.dim == 0 || query.len() != self.dim || k == 0 {
            return vec![];
        }
        let mut q = vec![0i8; self.dim];
        let qscale = quantize(query, &mut q);
        let score = |r: usize| {
            dot_i8(&q, &self.data[r * self.dim..(r + 1) * self.dim]) as f32
                * qscale
                * self.scales[r]
        };
        let n = self.ids.len();
        let keep =
            |r: usize| self.eligible(r, time) && allowed.is_none_or(|a| a.allows(&self.ids[r]));
        let rescore = rescore_rows(k, n);
        let top = match allowed {
            // A selective filter: visit only its rows, in row order so ties break the same
            // way as in a full scan.
            Some(Allowed::Ids(a)) if a.len() < n / 8 => {
                let mut rows: Vec<usize> = a
                    .iter()
                    .filter_map(|id| self.row.get(id.as_str()).copied())
                    .filter(|&r| self.eligible(r, time))
                    .collect();
                rows.sort_unstable();
                top_k(rows.into_iter(), k, score)
            }
            // A big user: rank every row on its code, then score the best exactly.
            _ if n > exact_rows && rescore < n => {
                let which = if time.is_all() && allowed.is_none() {
                    Keep::Active
                } else {
                    Keep::Some(&keep)
                };
                // On one thread below PAR_STAGED_ROWS: waking the pool's threads cost more
                // than their share of the work saved (see the constant).
                let parallel = n >= PAR_STAGED_ROWS && rayon::current_num_threads() > 1;
                let rows = self.shortlist(query, rescore, which, parallel);
                // The shortlisted rows are scattered over the matrix: each piece asks for
                // the row a few places ahead as it scores the current one.
                let piece = |rows: &[usize]| {
                    let mut top = TopK::new(k);
                    for (i, &r) in rows.iter().enumerate() {
                        if let Some(&next) = rows.get(i + PREFETCH_AHEAD) {
                            prefetch(&self.data[next * self.dim..(next + 1) * self.dim]);
                        }
                        top.push(score(r), r);
                    }
                    top
                };
                if parallel {
                    rows.par_chunks(RESCORE_PIECE)
                        .map(piece)
                        .reduce(|| TopK::new(k), TopK::merge)
                } else {
                    piece(&rows)
                }
            }
            // A scan too small to split: on this thread, without handing it to the pool
            // (which cost 0.45 ms of a 0.9 ms scan at 20k rows, with the pool asleep).
            _ if n < 2 * PAR_ROWS => top_k((0..n).filter(|&r| keep(r)), k, score),
            // Otherwise every row, on every core for a big user: by then the query is
            // embedded and the cores would idle.
            _ => par_top_k(
                (0..n)
                    .into_par_iter()
                    .with_min_len(PAR_ROWS)
                    .filter(|&r| keep(r)),
                k,
                score,
            ),
        };
        let mut out: Vec<Scored> = top.heap.into_vec();
        out.sort();
        out.into_iter()
            .map(|Scored(s, r)| (self.ids[r].to_string(), s))
            .collect()
    }

    /// The `want` rows that `keep` allows with the best estimates of their dot product
    /// with `query` by their codes (ties to the earlier row), in row order.
    ///
    /// One pass over the codes, a block at a time, keeping the rows at or above the
    /// `want`-th best estimate seen so far ([`Shortlist`]); with `parallel`, one piece of
    /// the rows per core, merged.
    fn shortlist<F: Fn(usize) -> bool + Sync>(
        &self,
        query: &[f32],
        want: usize,
        keep: Keep<'_, F>,
        parallel: bool,
    ) -> Vec<usize> {
        let planes = QueryPlanes::new(query, self.codes.words);
        let kernel = CodeKernel::best();
        let n = self.ids.len();
        let allowed = |r: usize| match keep {
            Keep::Active => self.archived[r] == ACTIVE,
            Keep::Some(keep) => keep(r),
        };
        let piece = |rows: std::ops::Range<usize>| {
            let mut best = Shortlist::new(want);
            let mut rough = [0f32; BLOCK];
            let mut above = [0u32; BLOCK + LANES_F32];
            for first in rows.clone().step_by(BLOCK) {
                let out = &mut rough[..(rows.end - first).min(BLOCK)];
                rough_scores_on(kernel, &planes, &self.codes, first, out);
                let m = at_or_above(kernel, out, best.floor, &mut above);
                for &i in &above[..m] {
                    let (s, r) = (out[i as usize], first + i as usize);
                    if s >= best.floor && allowed(r) {
                        best.push(s, r);
                    }
                }
            }
            best
        };
        let best = if parallel {
            let pieces = rayon::current_num_threads();
            let size = n.div_ceil(pieces).next_multiple_of(BLOCK);
            (0..pieces)
                .into_par_iter()
                .map(|p| piece(p * size..((p + 1) * size).min(n)))
                .reduce(|| Shortlist::new(want), Shortlist::merge)
        } else {
            piece(0..n)
        };
        best.into_rows()
    }
}

/// The best `want` rows by estimate seen so far, for [`UserVectors::shortlist`]: rows
/// at or above `floor` are kept, and when twice `want` are held the best `want` are
/// selected (a partial sort) and the `want`-th becomes the new floor. Over a pass most rows
/// fall below the floor, so it costs a comparison a row and a few selections.
struct Shortlist {
    want: usize,
    floor: f32,
    /// Each row as one integer that orders best first: its estimate's bits, made to sort
    /// as integers and inverted, above its row number, so ties go to the earlier row and a
    /// selection compares plain integers.
    rows: Vec<u64>,
}

impl Shortlist {
    fn new(want: usize) -> Self {
        Self {
            want,
            floor: f32::NEG_INFINITY,
            rows: Vec::with_capacity(2 * want),
        }
    }

    /// Adds a row at or above the floor.
    fn push(&mut self, s: f32, r: usize) {
        self.add(u64::from(!sortable(s)) << 32 | r as u64);
    }

    /// Adds a row by its key, trimming once twice `want` are held.
    fn add(&mut self, key: u64) {
        self.rows.push(key);
        if self.rows.len() >= 2 * self.want {
            self.trim();
        }
    }

    /// Keeps the best `want` and raises the floor to the worst of them.
    fn trim(&mut self) {
        if self.rows.len() > self.want {
            if self.want == 0 {
                self.rows.clear();
                self.floor = f32::INFINITY;
                return;
            }
            self.rows.select_nth_unstable(self.want - 1);
            self.rows.truncate(self.want);
            self.floor = unsortable(!((self.rows[self.want - 1] >> 32) as u32));
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for key in other.rows {
            self.add(key);
        }
        self
    }

    /// The rows kept, in row order.
    fn into_rows(mut self) -> Vec<usize> {
        self.trim();
        let mut rows: Vec<usize> = self.rows.iter().map(|&k| k as u32 as usize).collect();
        rows.sort_unstable();
        rows
    }
}

/// `x`'s bits as an integer in the same order as `x` (for finite values and infinities).
fn sortable(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 1 << 31 }
}

/// The inverse of [`sortable`].
fn unsortable(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k })
}

/// Which rows a shortlist may hold.
enum Keep<'a, F> {
    /// The active ones (a search over all time without a filter), checked without a call.
    Active,
    /// Those the function allows.
    Some(&'a F),
}

/// Rows whose estimates the code pass holds at once (4 KB on the stack).
const BLOCK: usize = 1024;

/// Rows of a user below which a two-stage search stays on one thread. Measured on 2 cores
/// (Xeon, 384 dimensions, a search every 2 ms so the pool's threads sleep between them):
/// one thread 1.11-1.16 ms against 1.47 on two at 150k rows, 1.55-1.65 against 1.32-1.35
/// at 200k. Handing work to a sleeping thread and waiting for it back costs a few hundred
/// microseconds in these VMs, while a smaller user's codes stay in cache.
const PAR_STAGED_ROWS: usize = 175_000;

/// Shortlisted rows per piece of a parallel rescoring.
const RESCORE_PIECE: usize = 1024;

/// How many rows ahead the rescoring asks for a row's values.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to bring `bytes` into the cache (a hint: nothing on other targets).
#[inline(always)]
fn prefetch(bytes: &[i8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing and cannot fault; the address is inside `bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Floats in a 512-bit register.
const LANES_F32: usize = 16;

/// Writes the positions of the `scores` at or above `floor` into `at`, in order, and
/// returns how many there are. `at` holds a register's worth more than `scores`, which
/// the wide kernel may write past the count.
///
/// Which rows pass is unpredictable while a shortlist's floor is still rising, so a branch
/// per row mispredicted often: the portable loop has none, and the AVX-512 one compares
/// and compacts sixteen at a time.
fn at_or_above(kernel: CodeKernel, scores: &[f32], floor: f32, at: &mut [u32]) -> usize {
    assert!(at.len() >= scores.len() + LANES_F32);
    match kernel {
        // SAFETY: `kernel` is supported (its caller took it from `CodeKernel::best` or
        // checked it), and `at` is long enough (asserted above).
        #[cfg(target_arch = "x86_64")]
        CodeKernel::Avx512 => unsafe { x86::at_or_above_avx512(scores, floor, at) },
        _ => at_or_above_portable(scores, floor, at),
    }
}

fn at_or_above_portable(scores: &[f32], floor: f32, at: &mut [u32]) -> usize {
    let mut m = 0;
    for (i, &s) in scores.iter().enumerate() {
        at[m] = i as u32;
        m += usize::from(s >= floor);
    }
    m
}

/// The instructions the code pass runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeKernel {
    /// 64-bit popcounts of eight words at once (AVX-512 VPOPCNTDQ).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The scalar popcount instruction.
    #[cfg(target_arch = "x86_64")]
    Popcnt,
    /// Plain Rust (`count_ones` without the instruction is a dozen operations).
    Portable,
}

impl CodeKernel {
    /// Every kernel, fastest first.
    const ALL: &[CodeKernel] = &[
        #[cfg(target_arch = "x86_64")]
        Self::Avx512,
        #[cfg(target_arch = "x86_64")]
        Self::Popcnt,
        Self::Portable,
    ];

    fn best() -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.supported())
            .unwrap_or(Self::Portable)
    }

    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            Self::Portable => true,
        }
    }
}

/// Estimates the dot product of `planes`' query with rows `first..first + out.len()` on
/// `kernel`'s instructions: the sum of the query's values signed by the row's bits, times
/// the row's spread. (The center's own product with the query is the same for every row,
/// so it is left out.)
fn rough_scores_on(
    kernel: CodeKernel,
    planes: &QueryPlanes,
    codes: &Codes,
    first: usize,
    out: &mut [f32],
) {
    assert!(
        kernel.supported(),
        "{kernel:?} is not supported by this CPU"
    );
    assert!(codes.len_for(first + out.len()) <= codes.bits.len());
    assert!(first + out.len() <= codes.spread.len());
    match kernel {
        // SAFETY (both): the CPU has the instructions and the rows are inside `codes`
        // (both asserted above).
        #[cfg(target_arch = "x86_64")]
        CodeKernel::Avx512 => unsafe { x86::rough_scores_avx512(planes, codes, first, out) },
        #[cfg(target_arch = "x86_64")]
        CodeKernel::Popcnt => unsafe { x86::rough_scores_popcnt(planes, codes, first, out) },
        CodeKernel::Portable => rough_scores_portable(planes, codes, first, out),
    }
}

#[inline(always)]
fn rough_scores_portable(planes: &QueryPlanes, codes: &Codes, first: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = rough_score(planes, codes, first + i);
    }
}

/// Row `r`'s estimate, one word at a time.
#[inline(always)]
fn rough_score(planes: &QueryPlanes, codes: &Codes, r: usize) -> f32 {
    let mut set = 0u32;
    for (c, p) in planes.planes.iter().enumerate() {
        let b = codes.bits[codes.at(r, c)];
        set += (p[0] & b).count_ones()
            + 2 * (p[1] & b).count_ones()
            + 4 * (p[2] & b).count_ones()
            + 8 * (p[3] & b).count_ones();
    }
    planes.signed_sum(set, codes.ones[r]) * codes.spread[r]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Codes, LANES, LANES_F32, QueryPlanes, rough_score, rough_scores_portable};
    use std::arch::x86_64::*;

    /// [`super::at_or_above_portable`], sixteen scores to a comparison; each group's
    /// positions are compacted in a register and stored whole, which a shorter group
    /// overwrites (a register store, not `vpcompressd` to memory: that is slow on AMD).
    ///
    /// # Safety
    /// `at` must hold at least `scores.len() + 16` entries.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn at_or_above_avx512(scores: &[f32], floor: f32, at: &mut [u32]) -> usize {
        let floor_v = _mm512_set1_ps(floor);
        let step = _mm512_set1_epi32(LANES_F32 as i32);
        let mut index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut m = 0;
        let groups = scores.chunks_exact(LANES_F32);
        let rest = groups.remainder();
        for g in groups {
            // SAFETY: `g` holds 16 floats; `at[m..m + 16]` is inside `at`, since `m` is at
            // most the scores seen so far (the caller's contract).
            unsafe {
                let v = _mm512_loadu_ps(g.as_ptr());
                let pass = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, floor_v);
                let packed = _mm512_maskz_compress_epi32(pass, index);
                _mm512_storeu_si512(at.as_mut_ptr().add(m).cast(), packed);
                m += pass.count_ones() as usize;
            }
            index = _mm512_add_epi32(index, step);
        }
        let done = scores.len() - rest.len();
        for (i, &s) in rest.iter().enumerate() {
            at[m] = (done + i) as u32;
            m += usize::from(s >= floor);
        }
        m
    }

    /// [`rough_scores_portable`] with the scalar popcount instruction.
    #[target_feature(enable = "popcnt")]
    pub(super) fn rough_scores_popcnt(
        planes: &QueryPlanes,
        codes: &Codes,
        first: usize,
        out: &mut [f32],
    ) {
        rough_scores_portable(planes, codes, first, out)
    }

    /// The same sums, a block of eight rows at a time: one load holds a word of all eight,
    /// each plane's count accumulates in its own register (64-bit lanes, one per row), and
    /// the four are weighed once per block. Rows outside whole blocks go one by one.
    ///
    /// # Safety
    /// Rows `first..first + out.len()` must be inside `codes` (whole blocks included).
    #[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt,avx2")]
    pub(super) unsafe fn rough_scores_avx512(
        planes: &QueryPlanes,
        codes: &Codes,
        first: usize,
        out: &mut [f32],
    ) {
        let w = codes.words;
        let end = first + out.len();
        let (lo, hi) = (first.next_multiple_of(LANES), end / LANES * LANES);
        if lo >= hi {
            return rough_scores_portable(planes, codes, first, out);
        }
        for r in (first..lo).chain(hi..end) {
            out[r - first] = rough_score(planes, codes, r);
        }
        // The query's planes, each word's broadcast to every lane.
        let p: Vec<[__m512i; 4]> = planes
            .planes
            .iter()
            .map(|q| q.map(|x| _mm512_set1_epi64(x as i64)))
            .collect();
        let base = codes.bits.as_ptr();
        let (step, min) = (_mm256_set1_ps(planes.step), _mm256_set1_ps(planes.min));
        let (two, total) = (_mm256_set1_ps(2.0), _mm256_set1_ps(planes.total));
        for block in (lo..hi).step_by(LANES) {
            let words = block * w;
            let mut acc = [_mm512_setzero_si512(); 4];
            for (c, pc) in p.iter().enumerate() {
                // SAFETY: word `c` of the block's eight rows, inside `codes.bits` (the
                // caller's contract).
                let b = unsafe { _mm512_loadu_si512(base.add(words + c * LANES).cast()) };
                for k in 0..4 {
                    let n = _mm512_popcnt_epi64(_mm512_and_si512(b, pc[k]));
                    acc[k] = _mm512_add_epi64(acc[k], n);
                }
            }
            let sum = _mm512_add_epi64(
                _mm512_add_epi64(acc[0], _mm512_slli_epi64::<1>(acc[1])),
                _mm512_add_epi64(
                    _mm512_slli_epi64::<2>(acc[2]),
                    _mm512_slli_epi64::<3>(acc[3]),
                ),
            );
            // [`QueryPlanes::signed_sum`] times the spread, for the eight rows at once: the
            // same operations in the same order, unfused, so the same bits as one by one.
            // The counts (at most 15 × 64 × words) are exact as i32 and as f32.
            let set = _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(sum));
            let i = block - first;
            // SAFETY: rows `block..block + 8` are inside `ones`, `spread` and `out` (whole
            // blocks below `hi`).
            let (ones, spread) = unsafe {
                (
                    _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128(
                        codes.ones.as_ptr().add(block).cast(),
                    ))),
                    _mm256_loadu_ps(codes.spread.as_ptr().add(block)),
                )
            };
            let inner = _mm256_add_ps(_mm256_mul_ps(step, set), _mm256_mul_ps(min, ones));
            let signed = _mm256_sub_ps(_mm256_mul_ps(two, inner), total);
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(signed, spread)) };
        }
    }
}

/// A query for the code stage: its values in 4 bits (`min + step × u`, `u` in 0..16), kept
/// as four bit planes so a row's sum is four `and`-and-popcounts per 64 values.
struct QueryPlanes {
    /// Per 64-bit word of a code: the four planes of the query's `u` there.
    planes: Vec<[u64; 4]>,
    min: f32,
    step: f32,
    /// The sum of the quantized values.
    total: f32,
}

impl QueryPlanes {
    fn new(query: &[f32], words: usize) -> Self {
        let (lo, hi) = query
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let step = if hi > lo { (hi - lo) / 15.0 } else { 1.0 };
        let mut planes = vec![[0u64; 4]; words];
        let mut total = 0.0;
        for (i, &x) in query.iter().enumerate() {
            let u = ((x - lo) / step).round().clamp(0.0, 15.0) as u32;
            total += lo + step * u as f32;
            for (j, plane) in planes[i / 64].iter_mut().enumerate() {
                if u >> j & 1 == 1 {
                    *plane |= 1 << (i % 64);
                }
            }
        }
        Self {
            planes,
            min: lo,
            step,
            total,
        }
    }

    /// Σ q_i × (+1 where the row's bit is set, −1 where not), from the quantized query,
    /// given Σ of the query's `u` over the set bits and how many bits are set.
    #[inline(always)]
    fn signed_sum(&self, set: u32, ones: u16) -> f32 {
        // Σ over set bits of q_i = step × Σ u_i + min × (set bits); the signed sum is
        // twice that minus the sum over all.
        2.0 * (self.step * set as f32 + self.min * ones as f32) - self.total
    }
}

/// The best `k` of `rows` by `score`, on this thread.
fn top_k(rows: impl Iterator<Item = usize>, k: usize, score: impl Fn(usize) -> f32) -> TopK {
    rows.fold(TopK::new(k), |mut t, r| {
        t.push(score(r), r);
        t
    })
}

/// [`top_k`], each piece of rows on whichever core takes it.
fn par_top_k(
    rows: impl ParallelIterator<Item = usize>,
    k: usize,
    score: impl Fn(usize) -> f32 + Sync + Send,
) -> TopK {
    rows.fold(
        || TopK::new(k),
        |mut t, r| {
            t.push(score(r), r);
            t
        },
    )
    .reduce(|| TopK::new(k), TopK::merge)
}

/// Min-heap entry: the worst of the current top k sits on top.
struct Scored(f32, usize);

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// A user's f32 rows are freed once packed to int8; above this many, hand the freed pages back.
pub const TRIM_AFTER_ROWS: usize = 10_000;

/// Returns freed heap pages to the OS. Loading a big user's vectors allocates their f32
/// copies (1.5 KB each) only to pack them into int8; an allocator keeps such freed memory in
/// the process, which at 100k rows left about 2 KB per memory of RSS behind.
///
/// Both allocators a process may use are asked: mimalloc, the `memos` binary's global
/// allocator, and glibc's, which C code (SQLite) and builds with the system allocator use.
/// Each call costs nothing where its allocator holds no memory.
pub fn release_freed_memory() {
    // SAFETY: mi_collect walks mimalloc's own heaps; it has no preconditions.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A change to the vectors, applied after the store committed it.
#[derive(Debug, Clone)]
pub enum VectorOp {
    /// Add or replace a memory's vector.
    Upsert {
        /// The memory's scope.
        scope: Scope,
        /// The memory.
        id: String,
        /// Its `memory_time` or `create_time`.
        time: Millis,
        /// When it was archived; `None` while active.
        archived_at: Option<Millis>,
        /// Its vector.
        vector: Vec<f32>,
    },
    /// A memory was archived (at `at`) or made active again (`None`); its vector stays.
    SetArchived {
        /// The memory's scope.
        scope: Scope,
        /// The memory.
        id: String,
        /// When.
        at: Option<Millis>,
    },
    /// Remove a memory's vector.
    Delete {
        /// The memory's scope.
        scope: Scope,
        /// The memory.
        id: String,
    },
    /// Forget a whole scope.
    DropScope(Scope),
}

/// Vectors of the users searched lately, by scope, within a byte budget: the users least
/// recently searched give way (moka's TinyLFU policy) and load again from the store when
/// next searched, so RAM follows the working set, not every user ever searched.
///
/// A scope's weight is taken when it is loaded and again after each vector written to it.
#[derive(Debug)]
pub struct VectorIndex {
    users: moka::sync::Cache<Scope, Arc<RwLock<UserVectors>>>,
}

impl Default for VectorIndex {
    fn default() -> Self {
        Self::with_budget(u64::MAX)
    }
}

impl VectorIndex {
    /// An empty index without a budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index that keeps about `bytes` of vectors.
    pub fn with_budget(bytes: u64) -> Self {
        Self {
            users: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, u: &Arc<RwLock<UserVectors>>| {
                    let bytes = u.read().unwrap_or_else(|e| e.into_inner()).bytes();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// About how many bytes the loaded scopes hold now.
    pub fn weighted_bytes(&self) -> u64 {
        self.users.run_pending_tasks();
        self.users.weighted_size()
    }

    /// The loaded vectors of a scope, if loaded.
    pub fn get(&self, scope: &Scope) -> Option<Arc<RwLock<UserVectors>>> {
        self.users.get(scope)
    }

    /// Installs a scope's vectors loaded from the store. The caller holds the service's
    /// write lock, so no write slips between the load and the install.
    pub fn install(&self, scope: Scope, rows: Vec<StoredVector>) -> Arc<RwLock<UserVectors>> {
        let u = Arc::new(RwLock::new(UserVectors::from_rows(rows)));
        self.users.insert(scope, u.clone());
        u
    }

    /// Applies changes to loaded scopes; scopes not loaded will read the store when needed.
    pub fn apply(&self, ops: &[VectorOp]) {
        let users = &self.users;
        // Scopes that grew, weighed again once each after the batch.
        let mut grown: Vec<&Scope> = Vec::new();
        for op in ops {
            match op {
                VectorOp::Upsert {
                    scope,
                    id,
                    time,
                    archived_at,
                    vector,
                } => {
                    if let Some(u) = users.get(scope) {
                        u.write().unwrap_or_else(|e| e.into_inner()).upsert_as(
                            id,
                            *time,
                            *archived_at,
                            vector,
                        );
                        if !grown.contains(&scope) {
                            grown.push(scope);
                        }
                    }
                }
                VectorOp::SetArchived { scope, id, at } => {
                    if let Some(u) = users.get(scope) {
                        u.write()
                            .unwrap_or_else(|e| e.into_inner())
                            .set_archived(id, *at);
                    }
                }
                VectorOp::Delete { scope, id } => {
                    if let Some(u) = users.get(scope) {
                        u.write().unwrap_or_else(|e| e.into_inner()).delete(id);
                    }
                }
                VectorOp::DropScope(scope) => {
                    users.invalidate(scope);
                }
            }
        }
        // Re-inserting makes moka weigh the scope again; one dropped later in the batch
        // stays dropped.
        for scope in grown {
            if let Some(u) = users.get(scope) {
                users.insert(scope.clone(), u);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Reproducible pseudo-random numbers in [-0.5, 0.5) (a linear congruential generator).
    fn uniform(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::embed::normalize(&mut v);
        v
    }

    #[test]
    fn users_searched_least_lately_give_way_within_the_budget() {
        let rows = |n: usize| -> Vec<StoredVector> {
            (0..n)
                .map(|i| StoredVector {
                    id: format!("m{i}"),
                    time: i as Millis,
                    archived_at: None,
                    vector: unit(&[1.0, i as f32, 0.5, 0.25]),
                })
                .collect()
        };
        let one = {
            let mut u = UserVectors::default();
            for r in rows(100) {
                u.upsert_as(&r.id, r.time, None, &r.vector);
            }
            u.bytes() as u64
        };
        // Room for about ten users of 100 vectors; two hundred are searched in turn.
        let index = VectorIndex::with_budget(one * 10);
        for u in 0..200 {
            index.install(Scope::new("p", format!("u{u}")), rows(100));
            assert!(
                index.weighted_bytes() <= one * 10,
                "over budget at user {u}"
            );
        }
        let kept = (0..200)
            .filter(|u| index.get(&Scope::new("p", format!("u{u}"))).is_some())
            .count();
        assert!((1..=10).contains(&kept), "{kept} users kept");
        // A write to a scope that gave way changes nothing here: it loads from the store.
        index.apply(&[VectorOp::Upsert {
            scope: Scope::new("p", "u0"),
            id: "new".into(),
            time: 1,
            archived_at: None,
            vector: unit(&[1.0, 0.0, 0.0, 0.0]),
        }]);
        assert!(index.weighted_bytes() <= one * 10);
    }

    #[test]
    fn exact_top_k_with_time_and_allow_list() {
        let mut u = UserVectors::default();
        u.upsert("a", 10, &unit(&[1.0, 0.0, 0.0]));
        u.upsert("b", 20, &unit(&[0.9, 0.1, 0.0]));
        u.upsert("c", 30, &unit(&[0.0, 1.0, 0.0]));
        let q = unit(&[1.0, 0.0, 0.0]);
        let ids: Vec<String> = u
            .search(&q, 2, TimeRange::default(), None)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        let ids: Vec<String> = u
            .search(&q, 5, TimeRange::until(Some(15)), None)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(ids, ["a"]);
        let allowed: HashSet<String> = ["c".to_string()].into();
        let ids: Vec<String> = u
            .search(&q, 5, TimeRange::default(), Some(Allowed::Ids(&allowed)))
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(ids, ["c"]);
    }

    #[test]
    fn delete_keeps_rows_consistent() {
        let mut u = UserVectors::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            u.upsert(id, 0, &v);
        }
        u.delete("b");
        u.delete("zz");
        assert_eq!(u.len(), 3);
        let q = [0.0, 0.0, 0.0, 1.0];
        let top = &u.search(&q, 1, TimeRange::default(), None)[0];
        assert_eq!(top.0, "d");
        assert!((top.1 - 1.0).abs() < 1e-4);
        u.upsert("d", 0, &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(u.search(&q, 3, TimeRange::default(), None)[0].1, 0.0);
        assert_eq!(u.len(), 3);
    }

    #[test]
    fn int8_cosines_stay_close_to_float_ones() {
        // Pseudo-random unit vectors of the real model's size.
        let mut next = uniform(7);
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|_| unit(&(0..384).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let mut u = UserVectors::default();
        for (i, r) in rows.iter().enumerate() {
            u.upsert(&i.to_string(), 0, r);
        }
        let q = unit(&(0..384).map(|_| next()).collect::<Vec<_>>());
        for (id, s) in u.search(&q, 50, TimeRange::default(), None) {
            let exact = crate::embed::dot(&q, &rows[id.parse::<usize>().unwrap()]);
            assert!((s - exact).abs() < 0.005, "{s} vs {exact}");
        }
    }

    /// A big user's scan runs in parallel pieces and a selective filter visits only its
    /// rows; both must return exactly what one sequential pass over every row returns.
    #[test]
    fn parallel_and_filtered_scans_equal_a_sequential_pass() {
        let mut next = uniform(11);
        let n = PAR_ROWS * 3 + 17;
        let mut u = UserVectors::default();
        for i in 0..n {
            // Few distinct directions, so many rows tie and tie-breaking is exercised too.
            let dir = (i % 97) as f32;
            let v = unit(
                &(0..16)
                    .map(|d| (dir * (d as f32 + 1.0)).sin() + next() * 0.01)
                    .collect::<Vec<_>>(),
            );
            u.upsert(&i.to_string(), i as Millis, &v);
        }
        let q = unit(&(0..16).map(|_| next()).collect::<Vec<_>>());
        let sequential = |time: TimeRange, allowed: Option<&HashSet<String>>, k: usize| {
            let mut q8 = vec![0i8; u.dim];
            let qs = quantize(&q, &mut q8);
            let mut all: Vec<Scored> = (0..u.len())
                .filter(|&r| time.contains(u.times[r]))
                .filter(|&r| allowed.is_none_or(|a| a.contains(&*u.ids[r])))
                .map(|r| {
                    let row = &u.data[r * u.dim..(r + 1) * u.dim];
                    Scored(dot_i8_portable(&q8, row) as f32 * qs * u.scales[r], r)
                })
                .collect();
            all.sort();
            all.truncate(k);
            all.into_iter()
                .map(|Scored(s, r)| (u.ids[r].to_string(), s))
                .collect::<Vec<_>>()
        };
        let all = TimeRange::default();
        assert_eq!(u.search(&q, 40, all, None), sequential(all, None, 40));
        let early = TimeRange::until(Some((n / 2) as Millis));
        assert_eq!(u.search(&q, 25, early, None), sequential(early, None, 25));
        let few: HashSet<String> = (0..n).step_by(50).map(|i| i.to_string()).collect();
        assert_eq!(
            u.search(&q, 30, all, Some(Allowed::Ids(&few))),
            sequential(all, Some(&few), 30)
        );
        let many: HashSet<String> = (0..n)
            .filter(|i| i % 3 != 0)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            u.search(&q, 30, early, Some(Allowed::Ids(&many))),
            sequential(early, Some(&many), 30)
        );
        // The same filters as tests of each id: the same answers.
        let test = |id: &str| many.contains(id);
        assert_eq!(
            u.search(&q, 30, early, Some(Allowed::Test(&test))),
            sequential(early, Some(&many), 30)
        );
        let test = |id: &str| few.contains(id);
        assert_eq!(
            u.search(&q, 30, all, Some(Allowed::Test(&test))),
            sequential(all, Some(&few), 30)
        );
    }

    /// Rows scattered around a shared component, as embeddings are (every cosine high):
    /// `groups` topics, each row a topic's direction plus its own noise.
    fn embedding_like(n: usize, dim: usize, groups: usize, seed: u64) -> UserVectors {
        let mut next = uniform(seed);
        let common: Vec<f32> = (0..dim).map(|_| next()).collect();
        let topics: Vec<Vec<f32>> = (0..groups)
            .map(|_| (0..dim).map(|_| next()).collect())
            .collect();
        let mut u = UserVectors::default();
        for i in 0..n {
            let t = &topics[i % groups];
            let v: Vec<f32> = (0..dim)
                .map(|d| 2.0 * common[d] + t[d] + 0.6 * next())
                .collect();
            u.upsert(&format!("m{i}"), i as Millis, &unit(&v));
        }
        u
    }

    #[test]
    fn every_code_kernel_gives_the_same_estimates() {
        // 384 dimensions fill six words of a register's eight; 520 need a second chunk.
        for dim in [384, 520, 40] {
            let u = embedding_like(300, dim, 7, dim as u64);
            // Values spread over the query's 16 steps, so every plane has bits set.
            let query: Vec<f32> = (0..dim).map(|i| (i * 37 % 101) as f32 - 50.0).collect();
            let planes = QueryPlanes::new(&unit(&query), u.codes.words);
            assert!(planes.planes.iter().flatten().all(|&p| p != 0));
            let mut want = vec![0.0; 299];
            rough_scores_on(CodeKernel::Portable, &planes, &u.codes, 1, &mut want);
            for &kernel in CodeKernel::ALL.iter().filter(|k| k.supported()) {
                let mut got = vec![0.0; 299];
                rough_scores_on(kernel, &planes, &u.codes, 1, &mut got);
                assert_eq!(got, want, "{kernel:?}, {dim} dimensions");
            }
        }
    }

    #[test]
    fn codes_follow_writes_deletes_and_recentering() {
        let mut u = embedding_like(1_000, 64, 5, 3);
        for i in (0..1_000).step_by(3) {
            u.delete(&format!("m{i}"));
        }
        u.upsert("m1", 5, &unit(&[-1.0; 64]));
        // Each row's code is what encoding it against the current center gives.
        let (bits, spread, ones) = (
            u.codes.bits.clone(),
            u.codes.spread.clone(),
            u.codes.ones.clone(),
        );
        for r in 0..u.len() {
            u.encode(r);
        }
        assert_eq!(u.codes.bits, bits);
        assert_eq!(u.codes.spread, spread);
        assert_eq!(u.codes.ones, ones);
        assert_eq!(
            u.codes.bits.len(),
            u.len().div_ceil(LANES) * LANES * u.codes.words
        );
        // The center is taken again each time the user doubles: last at 512 rows.
        assert_eq!(u.codes.centered_at, 512);
        // A user loaded whole is centered on all its rows.
        let rows: Vec<StoredVector> = (0..u.len())
            .map(|r| StoredVector {
                id: u.ids[r].to_string(),
                time: u.times[r],
                archived_at: None,
                vector: u.row_values(r).collect(),
            })
            .collect();
        assert_eq!(UserVectors::from_rows(rows).codes.centered_at, u.len());
    }

    #[test]
    fn two_stage_search_keeps_what_the_exact_scan_finds() {
        let u = embedding_like(20_000, 128, 400, 5);
        let all = TimeRange::default();
        let mut next = uniform(9);
        let (mut kept, mut asked) = (0, 0);
        for t in 0..50 {
            // A query near one topic, as a question about it is.
            let near = u.row_values(t * 37).collect::<Vec<_>>();
            let q = unit(&near.iter().map(|x| x + 0.05 * next()).collect::<Vec<_>>());
            let exact = u.search(&q, 10, all, None);
            let staged = u.search_with(&q, 10, all, None, 0);
            assert_eq!(staged.len(), 10);
            // The rows it keeps carry their exact int8 cosines.
            for (id, s) in &staged {
                if let Some((_, e)) = exact.iter().find(|(i, _)| i == id) {
                    assert_eq!(s, e);
                }
            }
            asked += exact.len();
            kept += exact.iter().filter(|e| staged.contains(e)).count();
        }
        let share = kept as f64 / asked as f64;
        assert!(
            share >= 0.95,
            "two-stage kept {share:.3} of the exact top 10"
        );
        // Small users and `exact_rows` above the user's size scan exactly.
        let q = unit(&vec![0.1; 128]);
        assert_eq!(
            u.search_with(&q, 10, all, None, 20_000),
            u.search(&q, 10, all, None)
        );
    }

    #[test]
    fn two_stage_search_applies_time_and_filters_before_the_shortlist() {
        let u = embedding_like(20_000, 64, 50, 6);
        let q = unit(&u.row_values(3).collect::<Vec<_>>());
        // Only rows 10,000 and later, and only every third of them: the shortlist is taken
        // among those, so the list is full and all of it allowed.
        let late = TimeRange {
            from: Some(10_000),
            to: None,
        };
        let many: HashSet<String> = (0..20_000)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("m{i}"))
            .collect();
        let got = u.search_with(&q, 20, late, Some(Allowed::Ids(&many)), 0);
        assert_eq!(got.len(), 20);
        for (id, _) in &got {
            let i: usize = id[1..].parse().unwrap();
            assert!(i >= 10_000 && i.is_multiple_of(3), "{id}");
        }
    }

    #[test]
    fn the_shortlist_is_the_best_estimates_on_one_thread_or_many() {
        let mut u = embedding_like(5_000, 64, 40, 8);
        // Copies tie on their estimates: the earlier row goes first.
        for i in 0..300 {
            let v: Vec<f32> = u.row_values(7).collect();
            u.upsert(&format!("copy{i}"), 1, &v);
        }
        u.set_archived("m11", Some(5));
        let query = unit(&u.row_values(3).collect::<Vec<_>>());
        let planes = QueryPlanes::new(&query, u.codes.words);
        let mut rough = vec![0.0; u.len()];
        rough_scores_on(CodeKernel::Portable, &planes, &u.codes, 0, &mut rough);
        let best = |want: usize, keep: &dyn Fn(usize) -> bool| {
            let mut rows: Vec<usize> = (0..u.len()).filter(|&r| keep(r)).collect();
            rows.sort_by(|&a, &b| rough[b].total_cmp(&rough[a]).then(a.cmp(&b)));
            rows.truncate(want);
            rows.sort_unstable();
            rows
        };
        let odd = |r: usize| r % 2 == 1;
        for want in [1, 16, 250, 299, 1_000, 6_000] {
            let active = best(want, &|r| u.archived[r] == ACTIVE);
            let some = best(want, &odd);
            for parallel in [false, true] {
                let got = u.shortlist(&query, want, Keep::<fn(usize) -> bool>::Active, parallel);
                assert_eq!(got, active, "want {want}, parallel {parallel}");
                let got = u.shortlist(&query, want, Keep::Some(&odd), parallel);
                assert_eq!(got, some, "want {want}, parallel {parallel}, odd rows");
            }
        }
    }

    #[test]
    fn every_filter_path_finds_the_same_rows() {
        let mut next = uniform(4);
        for len in [0, 1, 15, 16, 17, 100, BLOCK] {
            // Coarse values, so many equal the floor.
            let scores: Vec<f32> = (0..len).map(|_| (next() * 8.0).round()).collect();
            for floor in [f32::NEG_INFINITY, -1.0, 0.0, 2.0, f32::INFINITY] {
                let want: Vec<u32> = (0..len as u32)
                    .filter(|&i| scores[i as usize] >= floor)
                    .collect();
                for &kernel in CodeKernel::ALL.iter().filter(|k| k.supported()) {
                    let mut at = vec![0; len + LANES_F32];
                    let m = at_or_above(kernel, &scores, floor, &mut at);
                    assert_eq!(at[..m], want, "{kernel:?}, {len} scores, floor {floor}");
                }
            }
        }
    }

    #[test]
    fn archived_rows_answer_only_as_of_searches_before_their_archiving() {
        let mut u = UserVectors::default();
        u.upsert("now", 10, &unit(&[1.0, 0.0, 0.0]));
        u.upsert_as("then", 10, Some(100), &unit(&[1.0, 0.1, 0.0]));
        let ids = |u: &UserVectors, t: TimeRange| -> Vec<String> {
            u.search(&unit(&[1.0, 0.0, 0.0]), 5, t, None)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(
            ids(&u, TimeRange::default()),
            vec!["now"],
            "now: active only"
        );
        assert_eq!(ids(&u, TimeRange::until(Some(50))), vec!["now", "then"]);
        assert_eq!(
            ids(&u, TimeRange::until(Some(100))),
            vec!["now"],
            "archived by then"
        );
        u.set_archived("then", None);
        assert_eq!(ids(&u, TimeRange::default()).len(), 2, "active again");
    }

    #[test]
    fn ops_touch_only_loaded_scopes() {
        let idx = VectorIndex::new();
        let s = Scope::new("p", "u");
        idx.apply(&[VectorOp::Upsert {
            scope: s.clone(),
            id: "x".into(),
            time: 0,
            archived_at: None,
            vector: vec![1.0],
        }]);
        assert!(idx.get(&s).is_none());
        idx.install(s.clone(), vec![]);
        idx.apply(&[VectorOp::Upsert {
            scope: s.clone(),
            id: "x".into(),
            time: 0,
            archived_at: None,
            vector: vec![1.0],
        }]);
        assert_eq!(idx.get(&s).unwrap().read().unwrap().len(), 1);
        idx.apply(&[VectorOp::DropScope(s.clone())]);
        assert!(idx.get(&s).is_none());
    }
}
