//! `memos bench extract`: precision and recall of the fast (no-LLM) extractor on a labelled
//! set of English and Chinese sentences (by default the one in the repository), and with
//! `--llm-url` the same for an OpenAI-compatible LLM, with its tokens and seconds per 100
//! messages.

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
    /// Also score an LLM: the base URL of an OpenAI-compatible API (e.g.
    /// http://127.0.0.1:8080/v1). The key, if any, comes from $MEMOS_LLM_API_KEY.
    #[arg(long)]
    llm_url: Option<String>,
    /// The LLM's model name.
    #[arg(long, default_value = "gpt-4o-mini")]
    llm_model: String,
    /// `json_schema` or `json_object`.
    #[arg(long, default_value = "json_schema")]
    llm_format: String,
    /// Also score preference detection with the trained head over this embedding model's
    /// sentence vectors (the built-in head, when it was trained for this model).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Train the head on the dev halves first (thresholds by cross-validation) and write it
    /// here (the built-in one: crates/memos-core/src/ingest/preference-head.json).
    #[arg(long, requires = "model_dir")]
    train_head: Option<PathBuf>,
}

/// Runs the extraction benchmark and prints its figures.
pub(crate) async fn extract(
    llm_config: memos_core::config::LlmConfig,
    args: ExtractArgs,
) -> Result<()> {
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
    print_table(&scores);
    let prefs = eval::parse_preferences(eval::PREFERENCES)?;
    println!(
        "\npreference detection, fast path: {} sentences ({} preferences)",
        prefs.len(),
        prefs.iter().filter(|l| l.preference.is_some()).count()
    );
    super::head::print_scores(&eval::score_preferences(&prefs, eval::fast_preference));
    if args.errors {
        for l in prefs.iter().filter(|l| l.split == "dev") {
            let got = eval::fast_preference(&l.text);
            let want = l.preference.as_deref().zip(l.topic.as_deref());
            if got != want {
                println!("  {:?}\n    got  {got:?}\n    want {want:?}", l.text);
            }
        }
    }
    if let Some(dir) = &args.model_dir {
        super::head::run(dir, args.train_head.as_deref())?;
    }
    if let Some(url) = &args.llm_url {
        llm(&set, url, &args, llm_config).await?;
    }
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

fn print_table(scores: &std::collections::BTreeMap<String, eval::Scores>) {
    println!(
        "{:<12} {:>5}  {:>15}  {:>15}  {:>15}  {:>8}",
        "split/lang", "n", "facts P / R", "prefs P / R", "dates P / R", "topic"
    );
    // Precision of nothing predicted is no figure: a model that produced nothing must
    // not read as precise.
    let p = |c: &eval::Counts| {
        if c.tp + c.fp == 0 {
            "none".to_string()
        } else {
            format!("{:.3}", c.precision())
        }
    };
    for (lang, s) in scores {
        println!(
            "{lang:<12} {:>5}  {:>6} / {:<6.3}  {:>6} / {:<6.3}  {:>6} / {:<6.3}  {:>8.3}",
            s.sentences,
            p(&s.facts),
            s.facts.recall(),
            p(&s.preferences),
            s.preferences.recall(),
            p(&s.dates),
            s.dates.recall(),
            s.topic_accuracy()
        );
    }
    println!("(P \"none\": nothing of that kind was produced)");
}

/// Scores an LLM on the same sentences: each sentence one user message, ten per call; the
/// first profile item naming a sentence as its source is that sentence's fact.
/// The model's timeout, token cap and retries come from `[llm]` (a slow local model needs
/// a longer `timeout_ms` than a hosted one); the URL, model and format from the flags.
async fn llm(
    set: &[eval::Labelled],
    url: &str,
    args: &ExtractArgs,
    config: memos_core::config::LlmConfig,
) -> Result<()> {
    use memos_core::config::LlmConfig;
    use memos_core::dates::Window;
    use memos_core::ingest::AddContext;
    use memos_core::ingest::facts::{self, Fact, Polarity};
    use memos_core::ingest::llm::LlmExtractor;
    use memos_core::model::{MemoryType, Message, Role, Scope};

    let llm = LlmExtractor::new(
        LlmConfig {
            base_url: url.to_string(),
            model: args.llm_model.clone(),
            response_format: args.llm_format.parse()?,
            window: 10,
            ..config
        },
        Default::default(),
    )?;
    let scope = Scope::new("bench", "u");
    let ctx = AddContext {
        scope: scope.clone(),
        conversation_id: "c".into(),
        ..Default::default()
    };
    let started = Instant::now();
    let mut found: Vec<Option<Fact>> = vec![None; set.len()];
    for (chunk_no, chunk) in set.chunks(10).enumerate() {
        let messages: Vec<Message> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| Message {
                id: format!("s{}", chunk_no * 10 + i),
                message_id: format!("s{}", chunk_no * 10 + i),
                scope: scope.clone(),
                conversation_id: "c".into(),
                role: Role::User,
                name: None,
                content: l.text.clone(),
                chat_time: memos_core::time::parse_str(&l.said_at).unwrap_or(0),
                create_time: 0,
                task_id: "bench".into(),
                raw: None,
            })
            .collect();
        let items = match llm.extract(&ctx, &messages, 0).await {
            Ok(items) => items,
            Err(e) => {
                println!("  a window failed: {e}");
                continue;
            }
        };
        for m in items
            .into_iter()
            .filter(|m| m.memory_type == MemoryType::UserMemory)
        {
            let Some(i) = m
                .sources
                .first()
                .and_then(|s| s.message_id.strip_prefix('s'))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if i >= set.len() || found[i].is_some() {
                continue;
            }
            let zh = set[i].lang == "zh";
            let preference = if m.tags.iter().any(|t| t == "dislike") {
                Some(Polarity::Dislike)
            } else if m.tags.iter().any(|t| t == "like") {
                Some(Polarity::Like)
            } else {
                None
            };
            let said = memos_core::time::parse_str(&set[i].said_at).unwrap_or(0);
            found[i] = Some(Fact {
                sentence: set[i].text.clone(),
                topic: facts::topic(&format!("{} {}", m.key, m.value), zh),
                preference,
                // No date from the model means "when said": not a date of its own.
                when: m
                    .memory_time
                    .filter(|t| memos_core::time::to_date(*t) != memos_core::time::to_date(said))
                    .map(|t| Window {
                        start: t,
                        end: t + 86_400_000,
                        phrase: String::new(),
                    }),
                value: m.value,
                zh,
            });
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let scores = eval::score(set, |l| {
        let i = set.iter().position(|x| std::ptr::eq(x, l))?;
        found[i].clone()
    });
    let u = llm.usage();
    println!(
        "\nLLM {} at {url}: {:.1} s and {:.0} tokens per 100 messages ({} calls, {} retries, {} failed windows; {} prompt + {} completion tokens)",
        args.llm_model,
        secs * 100.0 / set.len() as f64,
        (u.prompt_tokens + u.completion_tokens) as f64 * 100.0 / set.len() as f64,
        u.calls,
        u.retries,
        u.failures,
        u.prompt_tokens,
        u.completion_tokens
    );
    print_table(&scores);
    Ok(())
}
