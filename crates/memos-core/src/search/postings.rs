//! [`UserPostings`]: one user's BM25 postings in RAM, for a store whose search several
//! servers share (PostgreSQL keeps a copy of each user searched lately on every server,
//! brought up to date from the database's change log before each search).
//!
//! Scoring equals the SQL one term for term: tantivy's BM25 (k1 1.2, b 0.75) with the idf
//! and the average length of the whole database, which the caller reads from the database
//! with each query, and a term's frequency counted over the memory's terms. A query's
//! postings are a few thousand rows even in a 100k-memory user, so every matching row is
//! scored (well under a millisecond) and the ranking is exact; there is nothing to skip.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::{ACTIVE, Allowed, Candidate, TimeRange};
use crate::model::Millis;

/// BM25's constants, tantivy's (as in the SQL).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Dead rows tolerated before the postings are compacted, beyond as many as live ones.
const COMPACT_AFTER: usize = 4_096;

/// One user's memories as BM25 sees them.
#[derive(Debug, Default)]
pub struct UserPostings {
    /// Per row (rows of replaced or removed memories stay until compaction, dead).
    ids: Vec<Arc<str>>,
    /// Per row: the id's first 8 bytes as a big-endian number ([`id_key`]), so that ties
    /// in score are mostly ordered without reading the ids (scattered over the heap).
    keys: Vec<u64>,
    /// Per row: the number of terms (with repeats), BM25's document length.
    lens: Vec<u32>,
    /// Per row: `memory_time`, or `create_time` when there is none.
    times: Vec<Millis>,
    /// Per row: when it was archived, [`ACTIVE`] while it is not.
    archived: Vec<Millis>,
    /// Per row: whether it is the memory's current row.
    live: Vec<bool>,
    /// Each memory's current row.
    row: HashMap<Arc<str>, u32>,
    /// Per term: (row, frequency), rows ascending.
    terms: HashMap<Box<str>, Vec<(u32, u32)>>,
    /// Postings over all terms.
    postings: usize,
    /// Bytes of the ids of all rows and of the terms' keys, kept as they change so
    /// [`Self::bytes`] costs nothing.
    id_bytes: usize,
    term_bytes: usize,
}

impl UserPostings {
    /// Adds a memory, or replaces the one with its id: its terms ([`crate::text::terms`] of
    /// its index text, with repeats), its time and when it was archived.
    pub fn upsert(
        &mut self,
        id: &str,
        time: Millis,
        archived_at: Option<Millis>,
        terms: &[String],
    ) {
        self.remove(id);
        let r = u32::try_from(self.ids.len()).expect("fewer than 2^32 rows");
        let id: Arc<str> = Arc::from(id);
        self.id_bytes += id.len();
        self.row.insert(id.clone(), r);
        self.keys.push(id_key(&id));
        self.ids.push(id);
        self.lens
            .push(u32::try_from(terms.len()).unwrap_or(u32::MAX));
        self.times.push(time);
        self.archived.push(archived_at.unwrap_or(ACTIVE));
        self.live.push(true);
        let mut tf: HashMap<&str, u32> = HashMap::new();
        for t in terms {
            *tf.entry(t.as_str()).or_default() += 1;
        }
        self.postings += tf.len();
        for (t, n) in tf {
            match self.terms.get_mut(t) {
                Some(list) => list.push((r, n)),
                None => {
                    self.term_bytes += t.len();
                    self.terms.insert(t.into(), vec![(r, n)]);
                }
            }
        }
    }

    /// Removes a memory (nothing when it is not here).
    pub fn remove(&mut self, id: &str) {
        if let Some(r) = self.row.remove(id) {
            self.live[r as usize] = false;
            let dead = self.ids.len() - self.row.len();
            if dead > COMPACT_AFTER && dead > self.row.len() {
                self.compact();
            }
        }
    }

    /// Drops the dead rows and their postings, renumbering the live ones in order.
    fn compact(&mut self) {
        let mut new_row = vec![u32::MAX; self.ids.len()];
        let mut next = 0u32;
        for (r, &live) in self.live.iter().enumerate() {
            if live {
                new_row[r] = next;
                next += 1;
            }
        }
        fn keep<T>(v: &mut Vec<T>, live: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                live[i - 1]
            });
        }
        keep(&mut self.ids, &self.live);
        keep(&mut self.keys, &self.live);
        keep(&mut self.lens, &self.live);
        keep(&mut self.times, &self.live);
        keep(&mut self.archived, &self.live);
        self.live = vec![true; self.ids.len()];
        self.terms.retain(|_, list| {
            list.retain_mut(|(r, _)| {
                *r = new_row[*r as usize];
                *r != u32::MAX
            });
            list.shrink_to_fit();
            !list.is_empty()
        });
        self.postings = self.terms.values().map(Vec::len).sum();
        self.id_bytes = self.ids.iter().map(|id| id.len()).sum();
        self.term_bytes = self.terms.keys().map(|t| t.len()).sum();
        self.row = self
            .ids
            .iter()
            .enumerate()
            .map(|(r, id)| (id.clone(), r as u32))
            .collect();
    }

    /// How many memories it holds.
    pub fn len(&self) -> usize {
        self.row.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.row.is_empty()
    }

    /// About how much memory it takes: ids (shared by the rows and the map), the per-row
    /// columns, the map's entries and the postings.
    pub fn bytes(&self) -> usize {
        self.id_bytes
            + self.ids.len() * (16 + 8 + 4 + 8 + 8 + 1 + 40)
            + self.term_bytes
            + self.terms.len() * 64
            + self.postings * 8
    }

    /// The `limit` best memories for `query` (each term with its idf, repeats counting
    /// again, as in the SQL), given the database's average document length: best first,
    /// ties by id. Rows outside `time`, not current at its end, or outside `allowed` (when
    /// given) are skipped. Relativity is the score over the sum of the query's idf.
    pub fn search(
        &self,
        query: &[(&str, f64)],
        avg_len: f64,
        time: TimeRange,
        allowed: Option<Allowed<'_>>,
        limit: usize,
    ) -> Vec<Candidate> {
        if limit == 0 || query.is_empty() {
            return vec![];
        }
        // Ids given are marked first, one lookup each, and a search narrowed to a few (the
        // preference channel's) skips the other rows' postings unscored. A test is asked
        // after scoring, best rows first, only until `limit` pass: a broad filter (an add
        // reconciling with the user's profile items, half of them) then costs a few dozen
        // tests instead of one per row a common term reaches.
        let n = self.ids.len();
        let mut hits = SCRATCH.with(|scratch| {
            // A nested search on this thread (none today) would find it taken: it gets its
            // own.
            let mut own = Scratch::default();
            let mut borrowed = scratch.try_borrow_mut();
            let scratch = match borrowed.as_deref_mut() {
                Ok(s) => s,
                Err(_) => &mut own,
            };
            scratch.fit(n);
            let marked: Option<Vec<u32>> = match allowed {
                Some(Allowed::Ids(ids)) => Some(
                    ids.iter()
                        .filter_map(|id| self.row.get(id.as_str()).copied())
                        .inspect(|&r| scratch.marked[r as usize] = true)
                        .collect(),
                ),
                _ => None,
            };
            let mut touched: Vec<u32> = Vec::new();
            for &(term, idf) in query {
                let Some(list) = self.terms.get(term) else {
                    continue;
                };
                for &(r, tf) in list {
                    let at = r as usize;
                    if !self.live[at] || (marked.is_some() && !scratch.marked[at]) {
                        continue;
                    }
                    if !scratch.seen[at] {
                        scratch.seen[at] = true;
                        touched.push(r);
                    }
                    let (tf, len) = (f64::from(tf), f64::from(self.lens[at]));
                    scratch.score[at] +=
                        idf * tf * (K1 + 1.0) / (tf + K1 * ((1.0 - B) + B * len / avg_len));
                }
            }
            let hits: Vec<(f32, u32)> = touched
                .iter()
                .filter(|&&r| self.eligible(r as usize, time))
                .map(|&r| (scratch.score[r as usize] as f32, r))
                .collect();
            scratch.clear(&touched, marked.as_deref().unwrap_or(&[]));
            hits
        });
        let best_first = |a: &(f32, u32), b: &(f32, u32)| self.best_first(*a, *b);
        let hits = match allowed {
            Some(Allowed::Test(test)) => {
                best_passing(hits, limit, best_first, |r| test(&self.ids[r as usize]))
            }
            _ => {
                if hits.len() > limit {
                    hits.select_nth_unstable_by(limit - 1, best_first);
                    hits.truncate(limit);
                }
                hits.sort_unstable_by(best_first);
                hits
            }
        };
        let idf_sum: f64 = query.iter().map(|q| q.1).sum();
        hits.into_iter()
            .map(|(score, r)| {
                Candidate::lexical(self.ids[r as usize].to_string(), score, idf_sum as f32)
            })
            .collect()
    }

    /// Hits (score, row) best first: the higher score, then the smaller id, by its key
    /// first (`then_with`: ids are compared only for equal scores, and read only for
    /// equal keys).
    fn best_first(&self, a: (f32, u32), b: (f32, u32)) -> std::cmp::Ordering {
        b.0.total_cmp(&a.0).then_with(|| {
            let (a, b) = (a.1 as usize, b.1 as usize);
            self.keys[a]
                .cmp(&self.keys[b])
                .then_with(|| self.ids[a].cmp(&self.ids[b]))
        })
    }

    /// Whether row `r` may answer a search over `time`.
    fn eligible(&self, r: usize, time: TimeRange) -> bool {
        super::row_eligible(time, self.times[r], self.archived[r])
    }
}

thread_local! {
    /// Each thread's [`Scratch`] for [`UserPostings::search`].
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Per row, a search's running score, whether a term reached the row and whether the
/// filter allows it: all zero between searches, since each search clears only the rows it
/// set. A search of a 100k-memory user reaches a few thousand rows; allocating and zeroing
/// the three arrays for each (about 1 MB) cost more than the scoring.
#[derive(Default)]
struct Scratch {
    score: Vec<f64>,
    seen: Vec<bool>,
    marked: Vec<bool>,
}

impl Scratch {
    /// Room for `rows` rows (what was added is zero, like the rest).
    fn fit(&mut self, rows: usize) {
        if self.score.len() < rows {
            self.score.resize(rows, 0.0);
            self.seen.resize(rows, false);
            self.marked.resize(rows, false);
        }
    }

    /// Back to all zero, given the rows a search reached and marked.
    fn clear(&mut self, touched: &[u32], marked: &[u32]) {
        for &r in touched {
            self.score[r as usize] = 0.0;
            self.seen[r as usize] = false;
        }
        for &r in marked {
            self.marked[r as usize] = false;
        }
    }
}

/// An id's first 8 bytes as a big-endian number, zero-padded: ordering two keys orders the
/// ids unless the keys are equal (then the ids decide).
fn id_key(id: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = id.len().min(8);
    b[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// The `limit` best of `hits` in the order `best_first` that `test` passes, best first: the
/// best few are tested first, and more (four times as many each round) only while too few
/// pass.
fn best_passing<T: Copy>(
    mut hits: Vec<(f32, T)>,
    limit: usize,
    best_first: impl Fn(&(f32, T), &(f32, T)) -> std::cmp::Ordering,
    test: impl Fn(T) -> bool,
) -> Vec<(f32, T)> {
    let mut out = Vec::with_capacity(limit);
    let (mut done, mut want) = (0, limit.saturating_mul(4));
    while out.len() < limit && done < hits.len() {
        let rest = &mut hits[done..];
        let take = want.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, &best_first);
        }
        let head = &mut rest[..take];
        head.sort_unstable_by(&best_first);
        out.extend(
            head.iter()
                .filter(|(_, r)| test(*r))
                .take(limit - out.len()),
        );
        done += take;
        want = want.saturating_mul(4);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn terms(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// BM25 by the formula, for one memory.
    fn bm25(query: &[(&str, f64)], doc: &[String], avg: f64) -> f64 {
        query
            .iter()
            .map(|&(t, idf)| {
                let tf = doc.iter().filter(|d| d.as_str() == t).count() as f64;
                if tf == 0.0 {
                    return 0.0;
                }
                idf * tf * (K1 + 1.0) / (tf + K1 * ((1.0 - B) + B * doc.len() as f64 / avg))
            })
            .sum()
    }

    #[test]
    fn scores_are_bm25_ranked_with_ties_by_id_and_follow_replacements() {
        let mut p = UserPostings::default();
        let docs = [
            ("c", "hike mountain hike"),
            ("a", "hike lake"),
            ("b", "hike lake"),
            ("d", "swim lake sea"),
        ];
        for (id, text) in docs {
            p.upsert(id, 10, None, &terms(text));
        }
        let q = [("hike", 1.5), ("lake", 0.7)];
        let got = p.search(&q, 3.0, TimeRange::default(), None, 10);
        let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
        // "a" and "b" tie and break by id.
        assert_eq!(ids, ["a", "b", "c", "d"]);
        for c in &got {
            let text = docs.iter().find(|d| d.0 == c.id).unwrap().1;
            assert_eq!(c.score, bm25(&q, &terms(text), 3.0) as f32);
            assert!((c.relativity - (c.score / 2.2).min(1.0)).abs() < 1e-6);
        }
        // A limit keeps the best.
        let top = p.search(&q, 3.0, TimeRange::default(), None, 2);
        assert_eq!(top, got[..2]);
        // Replacing a memory replaces its terms; removing one removes it.
        p.upsert("a", 10, None, &terms("sea"));
        p.remove("d");
        let ids: Vec<String> = p
            .search(&q, 3.0, TimeRange::default(), None, 10)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(p.len(), 3);
    }

    /// Ties order by the whole id, also where the ids' first 8 bytes (the row keys) are
    /// equal or one id is a prefix of another, with a limit and with a test filter.
    #[test]
    fn ties_order_by_the_whole_id() {
        let mut p = UserPostings::default();
        let ids = [
            "mem-0001-b",
            "mem-0001",
            "mem-0001-a",
            "m",
            "mem-00\u{0}",
            "mem-0000-z",
            "n",
            "mem-0001\u{0}",
        ];
        for id in ids {
            p.upsert(id, 10, None, &terms("same words"));
        }
        let mut sorted = ids.to_vec();
        sorted.sort();
        let q = [("same", 1.0)];
        let got = |limit, allowed| -> Vec<String> {
            p.search(&q, 2.0, TimeRange::default(), allowed, limit)
                .into_iter()
                .map(|c| c.id)
                .collect()
        };
        assert_eq!(got(10, None), sorted);
        assert_eq!(got(3, None), sorted[..3]);
        let not_m = |id: &str| id != "m";
        assert_eq!(
            got(3, Some(Allowed::Test(&not_m))),
            sorted[1..4],
            "a test filter ranks alike"
        );
    }

    #[test]
    fn time_archive_and_allowed_ids_narrow_the_search() {
        let mut p = UserPostings::default();
        p.upsert("old", 100, None, &terms("tea"));
        p.upsert("new", 200, None, &terms("tea"));
        p.upsert("gone", 150, Some(300), &terms("tea"));
        let q = [("tea", 1.0)];
        let ids = |time: TimeRange, allowed: Option<Allowed<'_>>| {
            let mut v: Vec<String> = p
                .search(&q, 1.0, time, allowed, 10)
                .into_iter()
                .map(|c| c.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(TimeRange::default(), None), ["new", "old"]);
        // Archived at 300: current at 250, not at 300.
        assert_eq!(
            ids(TimeRange::until(Some(250)), None),
            ["gone", "new", "old"]
        );
        assert_eq!(ids(TimeRange::until(Some(300)), None), ["new", "old"]);
        // A window ending before the archive: "gone" was current then.
        assert_eq!(
            ids(TimeRange::default().within(120, 250), None),
            ["gone", "new"]
        );
        let allowed: HashSet<String> = ["old".to_string()].into();
        assert_eq!(
            ids(TimeRange::default(), Some(Allowed::Ids(&allowed))),
            ["old"]
        );
        // The same filter as a test of each id reached.
        let test = |id: &str| id == "old";
        assert_eq!(
            ids(TimeRange::default(), Some(Allowed::Test(&test))),
            ["old"]
        );
        let none = |_: &str| false;
        assert!(ids(TimeRange::default(), Some(Allowed::Test(&none))).is_empty());
    }

    /// A filter given as a test of each id ranks as the same filter given as ids, also
    /// when few of the best rows pass and the test must go down the list several times.
    #[test]
    fn a_test_filter_ranks_as_its_ids() {
        let mut p = UserPostings::default();
        for i in 0..2_000 {
            let text = format!("tea {} {}", "cup ".repeat(i % 9), i % 13);
            p.upsert(&format!("m{i:04}"), i as Millis, None, &terms(&text));
        }
        let q = [("tea", 0.5), ("cup", 1.0), ("7", 2.0)];
        for every in [2, 7, 50, 400, 5_000] {
            let ids: HashSet<String> = (0..2_000)
                .filter(|i| i % every == 3)
                .map(|i| format!("m{i:04}"))
                .collect();
            let test = |id: &str| ids.contains(id);
            for limit in [1, 10, 100] {
                let search =
                    |allowed| p.search(&q, 5.0, TimeRange::default(), Some(allowed), limit);
                let listed = search(Allowed::Ids(&ids));
                let tested = search(Allowed::Test(&test));
                assert_eq!(listed, tested, "every {every}, limit {limit}");
                assert_eq!(listed.len(), limit.min(ids.len()), "every {every}");
            }
        }
    }

    /// The per-thread scratch is left clean: searches of a small and a big user, with and
    /// without a list of ids, give on one thread what each gives on a fresh one.
    #[test]
    fn searches_in_a_row_leave_nothing_behind() {
        let user = |n: usize, seed: usize| {
            let mut p = UserPostings::default();
            for i in 0..n {
                let text = format!("tea {} {}", "cup ".repeat((i + seed) % 5), i % 7);
                p.upsert(&format!("m{i:04}"), i as Millis, None, &terms(&text));
            }
            p
        };
        let (small, big) = (user(50, 1), user(3_000, 2));
        let q = [("tea", 0.5), ("cup", 1.0), ("3", 2.0)];
        let ids: HashSet<String> = (0..3_000).step_by(7).map(|i| format!("m{i:04}")).collect();
        let run = |p: &UserPostings, listed: bool| {
            let allowed = listed.then_some(Allowed::Ids(&ids));
            p.search(&q, 4.0, TimeRange::default(), allowed, 40)
        };
        let cases = [(&big, true), (&small, false), (&big, false), (&small, true)];
        let alone: Vec<Vec<Candidate>> = cases
            .iter()
            .map(|&(p, listed)| std::thread::scope(|s| s.spawn(|| run(p, listed)).join()))
            .collect::<Result<_, _>>()
            .expect("no search panics");
        for round in 0..2 {
            for (&(p, listed), want) in cases.iter().zip(&alone) {
                assert_eq!(&run(p, listed), want, "round {round}, listed {listed}");
            }
        }
    }

    #[test]
    fn compaction_keeps_the_ranking() {
        let mut p = UserPostings::default();
        let q = [("x", 1.0), ("y", 0.5)];
        for i in 0..3 * COMPACT_AFTER {
            let text = if i % 3 == 0 { "x y y" } else { "x z" };
            p.upsert(&format!("m{i:05}"), 1, None, &terms(text));
        }
        let before = p.search(&q, 2.5, TimeRange::default(), None, 50);
        // Replace most of them twice over: dead rows pile up and are compacted away.
        for round in 0..2 {
            for i in (0..3 * COMPACT_AFTER).filter(|i| i % 3 != 0) {
                p.upsert(&format!("m{i:05}"), 1, None, &terms("x z"));
            }
            assert!(
                p.ids.len() - p.row.len() <= COMPACT_AFTER.max(p.row.len()),
                "round {round}"
            );
        }
        assert_eq!(p.len(), 3 * COMPACT_AFTER);
        assert_eq!(p.search(&q, 2.5, TimeRange::default(), None, 50), before);
        assert_eq!(p.postings, p.terms.values().map(Vec::len).sum::<usize>());
    }
}
