//! `memos bench retrieval`: ingests a memret/1 benchmark file (LoCoMo and others) through
//! the service's add path and scores every answerable question's ranked sources against
//! its gold messages and sessions, for BM25 alone and for the hybrid retriever.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use memos_core::model::Role;
use memos_core::search::vector;
use memos_core::service::{AddInput, NewMessage, SearchInput, SearchMode};
use memos_core::{Config, MemoryService, time};
use serde::Deserialize;

use super::pct;

const PROJECT: &str = "bench";
const KS: [usize; 4] = [1, 5, 10, 25];

/// Arguments of `memos bench retrieval`.
#[derive(Debug, Args)]
pub(crate) struct RetrievalArgs {
    /// A memret/1 JSON Lines file, e.g. ../shared/bench/locomo.jsonl.
    #[arg(long)]
    data: PathBuf,
    /// Only the first N cases (a quick slice).
    #[arg(long)]
    cases: Option<usize>,
    /// Only the first N scored questions of each case.
    #[arg(long)]
    questions: Option<usize>,
    /// Embedding model directory (default: the configured one). `none` runs BM25 only.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Keep the ingested data here instead of a temporary directory; when it already holds
    /// an ingested run, reuse it and only score (to compare search settings quickly).
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Score only these retrievers (bm25, dense, hybrid; default all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Dialogue-shaped queries (MADial-Bench style): each question comes after the last N
    /// turns of the latest session before it, as one long query, the way an app that
    /// passes the whole conversation searches. 0: the question alone.
    #[arg(long, default_value_t = 0)]
    dialogue_turns: usize,
}

/// One memret/1 line: a user's sessions and the questions about them.
#[derive(Deserialize)]
pub(super) struct Case {
    user_id: String,
    pub(super) sessions: Vec<Session>,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
pub(super) struct Session {
    session_id: String,
    timestamp: Option<String>,
    pub(super) messages: Vec<BenchMessage>,
}

#[derive(Deserialize)]
pub(super) struct BenchMessage {
    message_id: String,
    role: String,
    pub(super) content: String,
    speaker: Option<String>,
    timestamp: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
struct Attachment {
    caption: Option<String>,
}

#[derive(Deserialize)]
struct Question {
    query: String,
    query_time: Option<String>,
    category: String,
    answerable: bool,
    gold_message_ids: Vec<String>,
    gold_session_ids: Vec<String>,
}

/// Recall and nDCG sums for one group of questions.
#[derive(Default, Clone)]
struct Scores {
    n: usize,
    any: [f64; 4],
    all: [f64; 4],
    ndcg: [f64; 4],
}

impl Scores {
    fn add(&mut self, ranked: &[String], gold: &HashSet<String>) {
        if gold.is_empty() {
            return;
        }
        self.n += 1;
        for (i, &k) in KS.iter().enumerate() {
            let top = &ranked[..ranked.len().min(k)];
            let hits = top.iter().filter(|id| gold.contains(*id)).count();
            self.any[i] += f64::from(u8::from(hits > 0));
            self.all[i] += f64::from(u8::from(hits == gold.len()));
            let dcg: f64 = top
                .iter()
                .enumerate()
                .filter(|(_, id)| gold.contains(*id))
                .map(|(r, _)| 1.0 / (r as f64 + 2.0).log2())
                .sum();
            let ideal: f64 = (0..gold.len().min(k))
                .map(|r| 1.0 / (r as f64 + 2.0).log2())
                .sum();
            self.ndcg[i] += dcg / ideal;
        }
    }

    fn row(&self, label: &str) -> String {
        let f = |v: &[f64; 4]| {
            v.iter()
                .map(|x| format!("{:.3}", x / self.n.max(1) as f64))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "{label:<28} {:>5}  any@1,5,10,25 {}  all {}  ndcg {}",
            self.n,
            f(&self.any),
            f(&self.all),
            f(&self.ndcg)
        )
    }
}

/// Message- and session-level scores, overall and by category.
#[derive(Default)]
struct Report {
    message: BTreeMap<String, Scores>,
    session: BTreeMap<String, Scores>,
    latencies_ms: Vec<f64>,
    /// Characters of all the queries asked.
    query_chars: usize,
}

fn dedup(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.filter(|i| seen.insert(i.clone())).collect()
}

/// Runs the retrieval benchmark and prints its figures.
/// Every case of a memret/1 JSON Lines file.
pub(super) fn read_cases(path: &Path) -> Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("not a memret/1 file")
}

pub(crate) async fn retrieval(mut config: Config, args: RetrievalArgs) -> Result<()> {
    let mut cases = read_cases(&args.data)?;
    if let Some(n) = args.cases {
        cases.truncate(n);
    }
    let tmp = tempfile::tempdir()?;
    config.store.data_dir = args
        .keep_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let config_dir = config.store.data_dir.clone();
    let reuse = args.keep_dir.is_some() && config_dir.join("memos.db").is_file();
    super::choose_model(&mut config, args.model_dir.as_deref());
    let service = MemoryService::open(config).await?;
    let model = super::model_name(&service);

    let started = Instant::now();
    let mut n_messages = 0usize;
    if reuse {
        println!(
            "reusing the data ingested earlier in {}",
            config_dir.display()
        );
    } else {
        for case in &cases {
            n_messages += ingest(&service, case).await?;
        }
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let embedded = service.embed_pending().await?;
    let embed_s = started.elapsed().as_secs_f64();
    println!(
        "memos bench retrieval: {} cases, {n_messages} messages, embedding model {model}",
        cases.len()
    );
    println!(
        "ingest: {ingest_s:.1} s, {:.0} messages/s (sync adds, one per session, searchable by BM25 on return)",
        n_messages as f64 / ingest_s
    );
    if embedded > 0 {
        println!(
            "background embedding: {embedded} memories in {embed_s:.1} s more, {:.0} memories/s",
            embedded as f64 / embed_s
        );
    }

    if service.embedder().is_some()
        && (args.only.is_empty() || args.only.iter().any(|o| o == "dense"))
    {
        scan_agreement(&service, &cases).await?;
    }

    let mut modes = vec![("bm25", SearchMode::Lexical)];
    if service.embedder().is_some() {
        modes.push(("dense", SearchMode::Dense));
        modes.push(("hybrid", SearchMode::Hybrid));
    }
    modes.retain(|(name, _)| args.only.is_empty() || args.only.iter().any(|o| o == name));
    for (name, mode) in modes {
        // Every mode pays for its own query embeddings.
        service.clear_query_cache();
        let r = score(&service, &cases, mode, args.questions, args.dialogue_turns).await?;
        println!("\n== {name}: answerable questions with gold (LoCoMo categories 1-4)");
        for (level, table) in [("message", &r.message), ("session", &r.session)] {
            for (cat, s) in table {
                println!("{}", s.row(&format!("{level}/{cat}")));
            }
        }
        let mut l = r.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        println!(
            "search latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  ({} searches, limit 25)",
            pct(&l, 0.5),
            pct(&l, 0.95),
            pct(&l, 0.99),
            pct(&l, 1.0),
            l.len()
        );
        if args.dialogue_turns > 0 {
            println!(
                "dialogue queries: the last {} turns before each question, {:.0} characters on average",
                args.dialogue_turns,
                r.query_chars as f64 / l.len().max(1) as f64
            );
        }
    }
    Ok(())
}

async fn ingest(service: &Arc<MemoryService>, case: &Case) -> Result<usize> {
    let mut n = 0;
    for s in &case.sessions {
        let session_time = s.timestamp.as_deref().and_then(time::parse_str);
        let messages: Vec<NewMessage> = s
            .messages
            .iter()
            .map(|m| {
                let mut content = m.content.clone();
                for a in &m.attachments {
                    if let Some(c) = &a.caption {
                        content.push_str(&format!(" [image: {c}]"));
                    }
                }
                NewMessage {
                    role: if m.role == "assistant" {
                        Role::Assistant
                    } else {
                        Role::User
                    },
                    content,
                    chat_time: m
                        .timestamp
                        .as_deref()
                        .and_then(time::parse_str)
                        .or(session_time),
                    name: m.speaker.clone(),
                    message_id: Some(m.message_id.clone()),
                    raw: None,
                }
            })
            .filter(|m| !m.content.trim().is_empty())
            .collect();
        if messages.is_empty() {
            continue;
        }
        n += messages.len();
        let input = AddInput::sync(case.user_id.clone(), s.session_id.clone(), messages);
        service
            .add(PROJECT, input)
            .await
            .with_context(|| format!("ingesting {} {}", case.user_id, s.session_id))?;
    }
    Ok(n)
}

/// The question after the last `turns` turns of the latest session said before it (or
/// the last session, when the question has no time), one `speaker: text` line each.
fn dialogue_query(case: &Case, q: &Question, turns: usize) -> String {
    let asked = q.query_time.as_deref().and_then(time::parse_str);
    let session = case
        .sessions
        .iter()
        .rev()
        .find(|s| {
            let at = s.timestamp.as_deref().and_then(time::parse_str);
            match (asked, at) {
                (Some(a), Some(t)) => t <= a,
                _ => true,
            }
        })
        .or(case.sessions.last());
    let mut lines: Vec<String> = session
        .map(|s| {
            let from = s.messages.len().saturating_sub(turns);
            s.messages[from..]
                .iter()
                .map(|m| format!("{}: {}", m.speaker.as_deref().unwrap_or(&m.role), m.content))
                .collect()
        })
        .unwrap_or_default();
    lines.push(q.query.clone());
    lines.join("\n")
}

/// How well the two-stage vector scan (1-bit codes, then the best 4% scored exactly) keeps
/// the exact scan's results on real embeddings: every case's memories pooled as one user,
/// searched with every question.
async fn scan_agreement(service: &Arc<MemoryService>, cases: &[Case]) -> Result<()> {
    let Some(embedder) = service.embedder() else {
        return Ok(());
    };
    let mut rows = Vec::new();
    for case in cases {
        let scope = memos_core::model::Scope::new(PROJECT, case.user_id.clone());
        rows.extend(
            service
                .store()
                .embeddings(&scope, embedder.model_id())
                .await?,
        );
    }
    let n = rows.len();
    let pooled = vector::UserVectors::from_rows(rows);
    let all = memos_core::search::TimeRange::default();
    let (mut exact_ms, mut staged_ms) = (Vec::new(), Vec::new());
    let mut questions = 0usize;
    // Per k: (k, results the exact scan listed, of those in the two-stage list, lists
    // kept whole).
    let mut kept = [(10usize, 0usize, 0usize, 0usize), (40, 0, 0, 0)];
    for case in cases {
        for q in case.questions.iter().filter(|q| q.answerable) {
            let v = embedder.embed_query(&q.query)?;
            questions += 1;
            for (k, asked, same, whole) in kept.iter_mut() {
                let t = Instant::now();
                let exact = pooled.search(&v, *k, all, None);
                exact_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                let staged = pooled.search_with(&v, *k, all, None, 0);
                staged_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                let staged: HashSet<&String> = staged.iter().map(|(id, _)| id).collect();
                let hit = exact.iter().filter(|(id, _)| staged.contains(id)).count();
                *asked += exact.len();
                *same += hit;
                *whole += usize::from(hit == exact.len());
            }
        }
    }
    exact_ms.sort_by(f64::total_cmp);
    staged_ms.sort_by(f64::total_cmp);
    println!(
        "\ntwo-stage vector scan (search.exact_scan_rows), all {n} memories pooled as one user, every answerable question:"
    );
    for (k, asked, same, whole) in kept {
        println!(
            "  top {k} (rescoring {} rows): {:.4} of the exact scan's results kept, {:.3} of lists identical",
            vector::rescore_rows(k, n),
            same as f64 / asked.max(1) as f64,
            whole as f64 / questions.max(1) as f64
        );
    }
    println!(
        "  scan p50 (top 10 and top 40 together): exact {:.2} ms, two-stage {:.2} ms",
        pct(&exact_ms, 0.5),
        pct(&staged_ms, 0.5)
    );
    Ok(())
}

async fn score(
    service: &Arc<MemoryService>,
    cases: &[Case],
    mode: SearchMode,
    per_case: Option<usize>,
    dialogue_turns: usize,
) -> Result<Report> {
    let mut r = Report::default();
    for case in cases {
        let session_of: HashMap<&str, &str> = case
            .sessions
            .iter()
            .flat_map(|s| {
                s.messages
                    .iter()
                    .map(move |m| (m.message_id.as_str(), s.session_id.as_str()))
            })
            .collect();
        let questions = case
            .questions
            .iter()
            .filter(|q| {
                q.answerable && !(q.gold_message_ids.is_empty() && q.gold_session_ids.is_empty())
            })
            .take(per_case.unwrap_or(usize::MAX));
        for q in questions {
            let query = if dialogue_turns > 0 {
                dialogue_query(case, q, dialogue_turns)
            } else {
                q.query.clone()
            };
            r.query_chars += query.chars().count();
            let t = Instant::now();
            let hits = service
                .search(
                    PROJECT,
                    SearchInput {
                        user_id: case.user_id.clone(),
                        query,
                        limit: Some(25),
                        query_time: q.query_time.as_deref().and_then(time::parse_str),
                        mode,
                        ..Default::default()
                    },
                )
                .await?;
            r.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let messages = dedup(
                hits.iter()
                    .flat_map(|h| h.memory.sources.iter().map(|s| s.message_id.clone())),
            );
            let sessions = dedup(
                messages
                    .iter()
                    .filter_map(|m| session_of.get(m.as_str()).map(|s| s.to_string())),
            );
            let gold_m: HashSet<String> = q.gold_message_ids.iter().cloned().collect();
            let gold_s: HashSet<String> = q.gold_session_ids.iter().cloned().collect();
            for cat in ["all", q.category.as_str()] {
                r.message
                    .entry(cat.to_string())
                    .or_default()
                    .add(&messages, &gold_m);
                r.session
                    .entry(cat.to_string())
                    .or_default()
                    .add(&sessions, &gold_s);
            }
        }
    }
    Ok(r)
}
