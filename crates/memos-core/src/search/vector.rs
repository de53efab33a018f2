//! [`VectorIndex`]: the dense retriever. Each user's vectors live in one contiguous matrix in
//! RAM, loaded from the store on the user's first search and kept current by the service's
//! writes, and are scanned exactly.
//!
//! Rows are stored as int8 with one scale per row (384 bytes for a 384-dimension model
//! instead of 1,536): a quarter of the memory, a faster scan, and cosines within about 0.003
//! of the float ones, far below the gaps that decide a ranking. The store keeps the floats.
//!
//! Exact scan rather than HNSW: per-user partitions are small (`memos bench load` at 100k
//! memories in one user: the whole search, scan, BM25 and HTTP included, takes about 6 ms
//! beyond the query embedding), results are exact and reproducible, deletes are trivial,
//! and there is no index build, which takes minutes on 2 cores for graph indexes at 100k.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use super::TimeRange;
use crate::model::{MemoryStatus, Millis, Scope};
use crate::store::StoredVector;

/// The archive time of a row whose memory is active.
const ACTIVE: Millis = Millis::MAX;

/// One user's vectors.
#[derive(Debug, Default)]
pub struct UserVectors {
    /// Shared with `row`, so each id is allocated once.
    ids: Vec<Arc<str>>,
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
    /// About how much memory the rows take: the int8 values, the per-row scale and times,
    /// each id (shared by the list and the map) and the map's entry.
    pub fn bytes(&self) -> usize {
        let ids: usize = self.ids.iter().map(|id| id.len()).sum();
        self.data.len() + self.ids.len() * (4 + 8 + 8 + 16 + 48) + ids
    }

    #[cfg(test)]
    fn upsert(&mut self, id: &str, time: Millis, v: &[f32]) {
        self.upsert_as(id, time, None, v);
    }

    fn upsert_as(&mut self, id: &str, time: Millis, archived_at: Option<Millis>, v: &[f32]) {
        if self.dim == 0 {
            self.dim = v.len();
        }
        if v.len() != self.dim {
            tracing::warn!(id, "vector of another length ignored");
            return;
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
                self.ids.push(id);
                self.data.resize((r + 1) * self.dim, 0);
                self.scales.push(0.0);
                self.times.push(time);
                self.archived.push(archived_at.unwrap_or(ACTIVE));
                r
            }
        };
        self.scales[r] = quantize(v, &mut self.data[r * self.dim..(r + 1) * self.dim]);
    }

    fn delete(&mut self, id: &str) {
        let Some(r) = self.row.remove(id) else { return };
        // Swap-remove keeps the matrix dense; the moved row gets its new index.
        let last = self.ids.len() - 1;
        if r != last {
            let (d, moved) = (self.dim, self.ids[last].clone());
            self.data.copy_within(last * d..(last + 1) * d, r * d);
            self.ids.swap(r, last);
            self.times.swap(r, last);
            self.archived.swap(r, last);
            self.scales.swap(r, last);
            self.row.insert(moved, r);
        }
        self.ids.pop();
        self.times.pop();
        self.archived.pop();
        self.scales.pop();
        self.data.truncate(last * self.dim);
    }

    /// Bytes held, roughly: what `memos bench load` divides by the memory count.
    pub fn heap_bytes(&self) -> usize {
        let per_id: usize = self.ids.iter().map(|i| i.len() + 16).sum();
        self.data.capacity()
            + self.scales.capacity() * 4
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

    /// Whether row `r` may answer a search over `time`: inside it, and current at its end.
    fn eligible(&self, r: usize, time: TimeRange) -> bool {
        let status = if self.archived[r] == ACTIVE {
            MemoryStatus::Activated
        } else {
            MemoryStatus::Archived
        };
        time.contains(self.times[r]) && super::current_at(status, self.archived[r], time.to)
    }

    /// How many vectors the user has.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the user has none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` rows most similar to `query`, best first, as (memory id, cosine). Rows after
    /// outside `time` and rows outside `allowed` (when given) are skipped.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        time: TimeRange,
        allowed: Option<&HashSet<String>>,
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
        let top = match allowed {
            // A selective filter: visit only its rows, in row order so ties break the same
            // way as in a full scan.
            Some(a) if a.len() < self.ids.len() / 8 => {
                let mut rows: Vec<usize> = a
                    .iter()
                    .filter_map(|id| self.row.get(id.as_str()).copied())
                    .filter(|&r| self.eligible(r, time))
                    .collect();
                rows.sort_unstable();
                rows.into_iter().fold(TopK::new(k), |mut t, r| {
                    t.push(score(r), r);
                    t
                })
            }
            // Otherwise every row, on every core for a big user: by then the query is
            // embedded and the cores would idle.
            _ => (0..self.ids.len())
                .into_par_iter()
                .with_min_len(PAR_ROWS)
                .fold(
                    || TopK::new(k),
                    |mut t, r| {
                        if self.eligible(r, time)
                            && allowed.is_none_or(|a| a.contains(&*self.ids[r]))
                        {
                            t.push(score(r), r);
                        }
                        t
                    },
                )
                .reduce(|| TopK::new(k), TopK::merge),
        };
        let mut out: Vec<Scored> = top.heap.into_vec();
        out.sort();
        out.into_iter()
            .map(|Scored(s, r)| (self.ids[r].to_string(), s))
            .collect()
    }
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
        let mut u = UserVectors::default();
        for r in rows {
            u.upsert_as(&r.id, r.time, r.archived_at, &r.vector);
        }
        let u = Arc::new(RwLock::new(u));
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
            .search(&q, 5, TimeRange::default(), Some(&allowed))
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
            u.search(&q, 30, all, Some(&few)),
            sequential(all, Some(&few), 30)
        );
        let many: HashSet<String> = (0..n)
            .filter(|i| i % 3 != 0)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            u.search(&q, 30, early, Some(&many)),
            sequential(early, Some(&many), 30)
        );
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
