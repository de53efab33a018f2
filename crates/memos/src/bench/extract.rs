//! `memos bench extract`: precision and recall of the fast (no-LLM) extractor on a labelled
//! set of English and Chinese sentences (by default the one in the repository).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use memos_core::ingest::eval;

/// Arguments of `memos bench extract`.
#[derive(Debug, Args)]
pub(crate) struct ExtractArgs {
    /// A labelled set in JSON Lines (default: crates/memos-core/tests/data/extract-labelled.jsonl,
    /// built into the binary).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print every sentence the extractor gets wrong.
    #[arg(long)]
    errors: bool,
}

/// Runs the extraction benchmark and prints its figures.
pub(crate) fn extract(args: ExtractArgs) -> Result<()> {
    let text = match &args.data {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => eval::LABELLED.to_string(),
    };
    let set = eval::parse(&text)?;
    let started = Instant::now();
    let scores = eval::score_fast(&set);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "memos bench extract: fast path (no LLM), {} labelled sentences, {:.2} ms per 100 sentences",
        set.len(),
        secs * 1e5 / set.len().max(1) as f64
    );
    println!(
        "{:<12} {:>5}  {:>15}  {:>15}  {:>15}  {:>8}",
        "lang", "n", "facts P / R", "prefs P / R", "dates P / R", "topic"
    );
    for (lang, s) in &scores {
        println!(
            "{lang:<12} {:>5}  {:>6.3} / {:<6.3}  {:>6.3} / {:<6.3}  {:>6.3} / {:<6.3}  {:>8.3}",
            s.sentences,
            s.facts.precision(),
            s.facts.recall(),
            s.preferences.precision(),
            s.preferences.recall(),
            s.dates.precision(),
            s.dates.recall(),
            s.topic_accuracy()
        );
    }
    println!("(LLM extraction is not built yet: no --llm-url)");
    if args.errors {
        for l in &set {
            let at = memos_core::time::parse_str(&l.said_at).unwrap_or(0);
            let got = memos_core::ingest::facts::fact(&l.text, at);
            let summary = got.as_ref().map(|f| {
                (
                    f.preference.map(|p| p.as_str()),
                    f.topic.name(),
                    f.when.as_ref().map(|w| memos_core::time::to_date(w.start)),
                )
            });
            let want = l.fact.then(|| {
                (
                    l.preference.as_deref(),
                    l.topic.as_deref().unwrap_or("other"),
                    l.date.clone(),
                )
            });
            if summary != want {
                println!("  {:?}\n    got  {summary:?}\n    want {want:?}", l.text);
            }
        }
    }
    Ok(())
}
