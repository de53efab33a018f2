//! `memos bench preferences`: does the preference a user stated come back for a later
//! question that never names it? Each pair of the preference-retrieval set (issue 18) gets a
//! user of its own, who also said other things: preferences of other topics and plain facts
//! from the same labelled sets, in one conversation; the question comes in another. The
//! figure is how often the stated preference is in `preference_detail_list` at 1, 3 and 6,
//! per split and language (the held-out half was never tuned on).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use memos_core::ingest::eval;
use memos_core::model::Role;
use memos_core::service::{AddInput, NewMessage, SearchInput};
use memos_core::{Config, MemoryService};

const PROJECT: &str = "bench";
const KS: [usize; 3] = [1, 3, 6];

/// Arguments of `memos bench preferences`.
#[derive(Debug, Args)]
pub(crate) struct PreferencesArgs {
    /// Embedding model directory (default: the configured one). `none`: BM25 only.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Other preferences each user states besides the one asked about (other topics).
    #[arg(long, default_value_t = 8)]
    distractors: usize,
    /// Plain facts each user states too.
    #[arg(long, default_value_t = 4)]
    facts: usize,
    /// Print the held-out misses too (by default only the dev half's are printed, so the
    /// held-out half stays unseen while rules are written).
    #[arg(long)]
    show_heldout: bool,
    /// Print each miss.
    #[arg(long)]
    errors: bool,
}

#[derive(Default)]
struct Tally {
    n: usize,
    said: usize,
    at: [usize; 3],
}

pub(crate) async fn preferences(mut config: Config, args: PreferencesArgs) -> Result<()> {
    let pairs: Vec<eval::PrefQuestion> =
        eval::parse_lines("preference questions", eval::PREFERENCE_QUESTIONS)?;
    let set = eval::parse_preferences(eval::PREFERENCES)?;
    config.store.backend = memos_core::config::StoreBackend::Memory;
    super::choose_model(&mut config, args.model_dir.as_deref());
    let service = MemoryService::open(config).await?;
    let model = super::model_name(&service);

    let started = Instant::now();
    for (i, pair) in pairs.iter().enumerate() {
        // Others' preferences of other topics, and plain statements, of the same language:
        // picked by a fixed stride so every run is the same.
        let others: Vec<&eval::PrefQuestion> = pairs
            .iter()
            .cycle()
            .skip(i * 7 + 1)
            .step_by(5)
            .filter(|o| o.lang == pair.lang && o.topic != pair.topic)
            .take(args.distractors)
            .collect();
        let plain: Vec<&eval::PrefLabelled> = set
            .iter()
            .cycle()
            .skip(i * 3)
            .filter(|l| {
                l.lang == pair.lang
                    && l.preference.is_none()
                    && !l.text.ends_with('?')
                    && !l.text.ends_with('？')
            })
            .take(args.facts)
            .collect();
        let mut said: Vec<(String, Option<String>)> = others
            .iter()
            .map(|o| (o.preference.clone(), None))
            .chain(plain.iter().map(|l| (l.text.clone(), None)))
            .collect();
        let at = i % (said.len() + 1);
        said.insert(at, (pair.preference.clone(), Some(format!("target-{i}"))));
        let base = 1_735_689_600_000; // 2025-01-01
        let messages = said
            .into_iter()
            .enumerate()
            .map(|(k, (content, id))| NewMessage {
                role: Role::User,
                content,
                chat_time: Some(base + k as i64 * 60_000),
                name: None,
                message_id: id,
                raw: None,
            })
            .collect();
        service
            .add(
                PROJECT,
                AddInput::sync(format!("u{i}"), "earlier", messages),
            )
            .await?;
    }
    let embedded = service.embed_pending().await?;
    println!(
        "memos bench preferences: {} pairs, {} distractor preferences and {} plain facts per user, model {model}",
        pairs.len(),
        args.distractors,
        args.facts
    );
    println!(
        "ingest {:.1} s ({embedded} memories embedded)",
        started.elapsed().as_secs_f64()
    );

    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut latencies = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let t = Instant::now();
        let hits = service
            .search_preferences(
                PROJECT,
                &SearchInput {
                    user_id: format!("u{i}"),
                    query: pair.question.clone(),
                    conversation_id: Some("now".into()),
                    ..Default::default()
                },
                6,
            )
            .await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        let target = format!("target-{i}");
        let is_target =
            |m: &memos_core::model::Memory| m.sources.iter().any(|s| s.message_id == target);
        let rank = hits.iter().position(|h| is_target(&h.memory));
        // Whether the add recorded it as a preference at all (else no ranking can find it).
        let stored = service
            .preferences(PROJECT, &format!("u{i}"), 200)
            .await?
            .iter()
            .any(is_target);
        for key in [
            format!("{}/{}", pair.split, pair.lang),
            format!("{}/all", pair.split),
        ] {
            let t = tally.entry(key).or_default();
            t.n += 1;
            t.said += usize::from(stored);
            for (j, k) in KS.iter().enumerate() {
                if rank.is_some_and(|r| r < *k) {
                    t.at[j] += 1;
                }
            }
        }
        let shown = args.show_heldout || pair.split == "dev";
        if args.errors && shown && rank.is_none_or(|r| r >= 3) {
            println!(
                "  {:?} -> {:?}: {}",
                pair.preference,
                pair.question,
                match (stored, rank) {
                    (false, _) => "never stored as a preference".to_string(),
                    (true, None) => "not in the top 6".to_string(),
                    (true, Some(r)) => format!("rank {}", r + 1),
                }
            );
        }
    }
    println!(
        "{:<12} {:>4}  {:>8}  {:>6}  {:>6}  {:>6}",
        "split/lang", "n", "stored", "@1", "@3", "@6"
    );
    for (group, t) in &tally {
        let r = |x: usize| x as f64 / t.n.max(1) as f64;
        println!(
            "{group:<12} {:>4}  {:>8.3}  {:>6.3}  {:>6.3}  {:>6.3}",
            t.n,
            r(t.said),
            r(t.at[0]),
            r(t.at[1]),
            r(t.at[2])
        );
    }
    println!(
        "{}",
        super::latency_line("preference search", &mut latencies)
    );
    Ok(())
}
