//! `memos bench embed`: how fast the configured embedding model turns a query into a vector
//! (one at a time, as a search does) and memories into vectors (batched, as an add does),
//! in 8 bits and in f32 alternately.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use memos_core::Config;
use memos_core::embed::{self, Precision};

use super::latency_line;

/// Arguments of `memos bench embed`.
#[derive(Debug, Args)]
pub(crate) struct EmbedArgs {
    /// Embedding model directory (default: the configured one).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Queries to time.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Memories to embed in batches.
    #[arg(long, default_value_t = 512)]
    documents: usize,
    /// `int8`, `f32`, or `both` (default): both loaded, and timed in alternation in one run
    /// so that the machine's drift falls on both alike.
    #[arg(long, default_value = "both")]
    precision: String,
    /// Instead of timing: how close the 8-bit vectors are to f32's on a memret/1 file's
    /// first two cases (every turn as a passage, every third also as a query): mean
    /// 1 - cosine, the lowest cosine, and how much of each query's f32 top 10 the 8-bit
    /// vectors find.
    #[arg(long, value_name = "FILE")]
    agreement: Option<PathBuf>,
}

const QUERIES: [&str; 8] = [
    "When did Caroline go to the LGBTQ support group?",
    "What does Melanie like to paint?",
    "what food do I like",
    "Where did we decide to travel next summer, and who is coming along?",
    "我喜欢吃什么",
    "上周我们讨论了哪些旅行计划？",
    "How many children does the user have?",
    "Which book did Jon recommend after the conference in May?",
];

const DOCUMENTS: [&str; 4] = [
    "[2023-05-08] Caroline: I went to a LGBTQ support group yesterday and it was so powerful.",
    "[2023-05-08] Melanie: That's great to hear! I've been painting a lot lately, mostly sunsets by the lake with my kids.",
    "[2024-01-02] 用户：我每天早上跑步，周末喜欢去爬山。",
    "[2023-07-14] Jon: Thanks! The conference was a blast, I met so many people who work on dance studios.",
];

/// Runs the embedding benchmark and prints its figures.
pub(crate) fn embed(config: Config, args: EmbedArgs) -> Result<()> {
    let dir = args.model_dir.unwrap_or(config.embed.model_dir);
    if dir.as_os_str().is_empty() {
        bail!("no embedding model configured; pass --model-dir");
    }
    let precisions = match args.precision.as_str() {
        "both" => vec![Precision::F32, Precision::Int8],
        p => vec![p.parse::<Precision>().map_err(anyhow::Error::msg)?],
    };
    if let Some(path) = &args.agreement {
        return agreement(&dir, path);
    }
    let mut models = Vec::new();
    for p in precisions {
        let started = Instant::now();
        let model = embed::load(&dir, p).with_context(|| format!("loading {}", dir.display()))?;
        println!(
            "memos bench embed: model {} (dim {}), {}, loaded in {:.2} s",
            model.model_id(),
            model.dim(),
            label(p),
            started.elapsed().as_secs_f64()
        );
        // Warm up: first calls allocate and fault the weights in.
        model.embed_documents(&DOCUMENTS)?;
        models.push((p, model));
    }
    // Documents first: the embedder yields half its time to searches for a while after the
    // last one (`QUERY_QUIET_MS`), which would halve a figure taken right after the queries.
    let docs: Vec<String> = (0..args.documents)
        .map(|i| format!("{} ({i})", DOCUMENTS[i % DOCUMENTS.len()]))
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let mut secs = vec![0f64; models.len()];
    for chunk in refs.chunks(64) {
        for ((_, model), s) in models.iter().zip(&mut secs) {
            let t = Instant::now();
            model.embed_documents(chunk)?;
            *s += t.elapsed().as_secs_f64();
        }
    }
    for ((p, _), s) in models.iter().zip(&secs) {
        println!(
            "document embedding, {}: {} memories in {s:.2} s, {:.0} memories/s",
            label(*p),
            docs.len(),
            docs.len() as f64 / s
        );
    }
    let mut ms = vec![Vec::with_capacity(args.queries); models.len()];
    for i in 0..args.queries {
        // A varying suffix keeps every query distinct, as a cache would see them.
        let q = format!("{} #{i}", QUERIES[i % QUERIES.len()]);
        for ((_, model), ms) in models.iter().zip(&mut ms) {
            let t = Instant::now();
            model.embed_query(&q)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for ((p, _), ms) in models.iter().zip(&mut ms) {
        println!(
            "{}",
            latency_line(&format!("query embedding, {}", label(*p)), ms)
        );
    }
    Ok(())
}

/// `--agreement`: the 8-bit encoder against the f32 reference on real turns.
fn agreement(dir: &std::path::Path, path: &std::path::Path) -> Result<()> {
    let mut cases = super::retrieval::read_cases(path)?;
    cases.truncate(2);
    let turns: Vec<String> = cases
        .into_iter()
        .flat_map(|c| c.sessions)
        .flat_map(|s| s.messages)
        .map(|m| m.content)
        .collect();
    let texts: Vec<&str> = turns.iter().map(String::as_str).collect();
    let queries: Vec<&str> = texts.iter().step_by(3).copied().collect();
    // (passages, queries) in one precision.
    type Vectors = (Vec<Vec<f32>>, Vec<Vec<f32>>);
    let vectors = |p: Precision| -> Result<Vectors> {
        let model = embed::load(dir, p).with_context(|| format!("loading {}", dir.display()))?;
        let q = queries
            .iter()
            .map(|t| model.embed_query(t))
            .collect::<memos_core::Result<_>>()?;
        Ok((model.embed_documents(&texts)?, q))
    };
    let (f32_docs, f32_queries) = vectors(Precision::F32)?;
    let (docs, queries) = vectors(Precision::Int8)?;
    let cosines: Vec<f32> = f32_docs
        .iter()
        .zip(&docs)
        .chain(f32_queries.iter().zip(&queries))
        .map(|(a, b)| embed::dot(a, b))
        .collect();
    let mean = cosines.iter().map(|c| 1.0 - f64::from(*c)).sum::<f64>() / cosines.len() as f64;
    let lowest = cosines.iter().copied().fold(1f32, f32::min);
    let top10 = |q: &[f32], docs: &[Vec<f32>]| -> Vec<usize> {
        let mut ids: Vec<usize> = (0..docs.len()).collect();
        ids.sort_by(|&a, &b| embed::dot(q, &docs[b]).total_cmp(&embed::dot(q, &docs[a])));
        ids.truncate(10);
        ids
    };
    let found: usize = f32_queries
        .iter()
        .zip(&queries)
        .map(|(fq, q)| {
            let (want, got) = (top10(fq, &f32_docs), top10(q, &docs));
            want.iter().filter(|i| got.contains(i)).count()
        })
        .sum();
    println!(
        "int8 ({}) against f32, {} turns and {} queries: mean 1 - cosine {mean:.3e}, lowest cosine {lowest:.5}, f32's top 10 found {:.4}",
        embed::Kernel::best().name(),
        texts.len(),
        queries.len(),
        found as f64 / (10 * queries.len().max(1)) as f64
    );
    Ok(())
}

/// The precision, and for 8 bits the kernel the CPU runs it on.
fn label(p: Precision) -> String {
    match p {
        Precision::F32 => "f32".into(),
        Precision::Int8 => format!("int8 ({})", embed::Kernel::best().name()),
    }
}
