//! `memos bench ...`: benchmarks that print figures. Targets live here, never in tests.
//!
//! - [`retrieval`]: recall and nDCG on a memret/1 file (LoCoMo).
//! - [`embed`]: the embedding model's query latency and document throughput.
//! - [`extract`]: precision and recall of the fast extractor on the labelled sentences.
//! - [`load`]: synthetic users, concurrent clients over real HTTP, latency and RSS.
//! - [`cache`]: RAM of the search caches over many users searched in turn.

pub(crate) mod cache;
pub(crate) mod embed;
pub(crate) mod extract;
pub(crate) mod load;
pub(crate) mod retrieval;

/// The `p` quantile (0..=1) of an ascending slice; 0 when empty.
pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints a latency line: p50/p95/p99/max in milliseconds.
pub(crate) fn latency_line(label: &str, ms: &mut [f64]) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "{label}: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
        pct(ms, 0.5),
        pct(ms, 0.95),
        pct(ms, 0.99),
        pct(ms, 1.0),
        ms.len()
    )
}
