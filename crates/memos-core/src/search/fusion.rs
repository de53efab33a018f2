//! Merging candidate lists from several retrievers, two ways:
//!
//! - [`fuse`], reciprocal-rank fusion: needs no calibration between retrievers and only
//!   looks at ranks.
//! - [`fuse_scores`], a weighted sum of each retriever's calibrated `relativity`: keeps how
//!   sure each retriever is, so a strong lexical match is not outvoted by a middling
//!   semantic one.
//!
//! Either way a candidate's `relativity` is the best calibrated relevance any retriever gave
//! it, so fusion never invents confidence.

use std::collections::HashMap;

use super::Candidate;

/// The usual RRF constant: damps the head of each list so one retriever cannot dominate.
pub const RRF_K: f32 = 60.0;

/// Fuses weighted ranked lists into one ranked list. `score` of the result is the fused
/// RRF score; ties keep the order of first appearance.
pub fn fuse(lists: &[(f32, Vec<Candidate>)]) -> Vec<Candidate> {
    merge(lists, |weight, rank, _| {
        weight / (RRF_K + rank as f32 + 1.0)
    })
}

/// Fuses weighted lists by the weighted sum of their calibrated relevances (a candidate
/// missing from a list gets 0 there). `score` of the result is that sum over the total weight.
pub fn fuse_scores(lists: &[(f32, Vec<Candidate>)]) -> Vec<Candidate> {
    let total: f32 = lists.iter().map(|(w, _)| w).sum::<f32>().max(f32::EPSILON);
    merge(lists, |weight, _, c| weight * c.relativity / total)
}

/// Sums each candidate's `contribution(weight, rank, candidate)` over the lists and sorts by
/// the sum; a single list passes through unchanged.
fn merge(
    lists: &[(f32, Vec<Candidate>)],
    contribution: impl Fn(f32, usize, &Candidate) -> f32,
) -> Vec<Candidate> {
    if let [(_, only)] = lists {
        return only.clone();
    }
    let mut order: Vec<String> = Vec::new();
    let mut acc: HashMap<String, Candidate> = HashMap::new();
    for (weight, list) in lists {
        for (rank, c) in list.iter().enumerate() {
            let add = contribution(*weight, rank, c);
            match acc.get_mut(&c.id) {
                Some(e) => {
                    e.score += add;
                    e.relativity = e.relativity.max(c.relativity);
                }
                None => {
                    order.push(c.id.clone());
                    acc.insert(
                        c.id.clone(),
                        Candidate {
                            id: c.id.clone(),
                            score: add,
                            relativity: c.relativity,
                        },
                    );
                }
            }
        }
    }
    let mut out: Vec<Candidate> = order.into_iter().filter_map(|id| acc.remove(&id)).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, rel: f32) -> Candidate {
        Candidate {
            id: id.into(),
            score: 0.0,
            relativity: rel,
        }
    }

    #[test]
    fn single_list_passes_through() {
        let l = vec![c("a", 0.9), c("b", 0.5)];
        assert_eq!(fuse(&[(1.0, l.clone())]), l);
    }

    #[test]
    fn agreement_beats_a_single_top_rank() {
        let bm25 = vec![c("x", 0.9), c("both", 0.6)];
        let dense = vec![c("y", 0.8), c("both", 0.7)];
        let fused = fuse(&[(1.0, bm25), (1.0, dense)]);
        assert_eq!(fused[0].id, "both");
        assert_eq!(fused[0].relativity, 0.7);
        assert_eq!(fused.len(), 3);
    }

    #[test]
    fn score_fusion_keeps_confidence() {
        // A sure lexical hit beats a candidate both retrievers find only weakly.
        let bm25 = vec![c("sure", 0.95), c("weak", 0.2)];
        let dense = vec![c("weak", 0.3), c("other", 0.25)];
        let fused = fuse_scores(&[(1.0, bm25.clone()), (1.0, dense.clone())]);
        assert_eq!(fused[0].id, "sure");
        assert!((fused[0].score - 0.475).abs() < 1e-6);
        assert_eq!(
            fuse(&[(1.0, bm25), (1.0, dense)])[0].id,
            "weak",
            "rank fusion prefers agreement"
        );
    }

    #[test]
    fn weights_shift_the_order() {
        let a = vec![c("a", 0.5)];
        let b = vec![c("b", 0.5)];
        assert_eq!(fuse(&[(1.0, a.clone()), (2.0, b.clone())])[0].id, "b");
        assert_eq!(fuse(&[(2.0, a), (1.0, b)])[0].id, "a");
    }
}
