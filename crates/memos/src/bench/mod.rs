//! `memos bench ...`: benchmarks that print figures. Targets live here, never in tests.
//!
//! - [`retrieval`]: recall and nDCG on a memret/1 file (LoCoMo).
//! - [`embed`]: the embedding model's query latency and document throughput.
//! - [`extract`]: precision and recall of the fast extractor on the labelled sentences;
//!   [`head`]: the same with the trained preference head, and its training.
//! - [`load`]: synthetic users, concurrent clients over real HTTP, latency and RSS.
//! - [`cache`]: RAM of the search caches over many users searched in turn.
//! - [`preferences`]: whether a stated preference comes back for a question that never
//!   names it.

pub(crate) mod cache;
pub(crate) mod embed;
pub(crate) mod extract;
pub(crate) mod head;
pub(crate) mod load;
pub(crate) mod preferences;
pub(crate) mod retrieval;

/// Points the configuration at a bench's `--model-dir` (`none`: no model, BM25 only), and
/// makes the model required when one is named, so a wrong path fails instead of quietly
/// measuring BM25.
pub(crate) fn choose_model(config: &mut memos_core::Config, model_dir: Option<&std::path::Path>) {
    match model_dir {
        Some(d) if d.as_os_str() == "none" => config.embed.model_dir = Default::default(),
        Some(d) => config.embed.model_dir = d.to_path_buf(),
        None => {}
    }
    config.embed.required = !config.embed.model_dir.as_os_str().is_empty();
}

/// The embedding model a service runs, or `none`.
pub(crate) fn model_name(service: &memos_core::MemoryService) -> String {
    service
        .embedder()
        .map_or("none".to_string(), |e| e.model_id().to_string())
}

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
