//! `memos bench cache`: RAM under many users. Synthetic users (`--users` of
//! `--user-size` memories, written straight into a fresh embedded store as `bench load`
//! preloads them, with vectors mixed from the real model's embeddings) are searched
//! round-robin by an in-process service whose caches have `--cache-mb`; every so often it
//! prints what the caches hold, the process's RSS and the search latency since the last
//! line. Before the caches were bounded, RAM grew with every user ever searched.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use memos_core::embed::{self, Embedder};
use memos_core::service::SearchInput;
use memos_core::store::EmbeddedStore;
use memos_core::{Config, MemoryService};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::latency_line;
use super::load::{ACTIVITIES, preload, query};

/// Arguments of `memos bench cache`.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// Users.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Memories of each user.
    #[arg(long, default_value_t = 100)]
    user_size: usize,
    /// `search.cache_mb` for the run.
    #[arg(long, default_value_t = 64)]
    cache_mb: u64,
    /// Times every user is searched.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Embedding model directory (default: the configured one).
    #[arg(long)]
    model_dir: Option<std::path::PathBuf>,
}

/// This process's resident memory (`VmRSS`) or peak (`VmHWM`), in MiB.
fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub(crate) async fn cache(mut config: Config, args: CacheArgs) -> Result<()> {
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| config.embed.model_dir.clone());
    if model_dir.as_os_str().is_empty() {
        bail!("bench cache measures the vector cache: it needs an embedding model (--model-dir)");
    }
    let embedder: Arc<dyn Embedder> = Arc::from(
        embed::load(&model_dir, config.embed.precision)
            .with_context(|| format!("loading the model in {}", model_dir.display()))?,
    );
    let texts: Vec<String> = ACTIVITIES.iter().map(|a| format!("User: I {a}.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let templates = embedder.embed_documents(&refs)?;
    let dir = tempfile::tempdir()?;
    let users: Vec<(String, usize)> = (0..args.users)
        .map(|i| (format!("user-{i}"), args.user_size))
        .collect();
    let started = Instant::now();
    {
        let store = EmbeddedStore::open(dir.path())?;
        preload(&store, &users, Some(embedder.as_ref()), &templates).await?;
    }
    println!(
        "memos bench cache: {} users of {} memories preloaded in {:.1} s; search.cache_mb = {}; model {}",
        args.users,
        args.user_size,
        started.elapsed().as_secs_f64(),
        args.cache_mb,
        embedder.model_id()
    );
    config.store.data_dir = dir.path().to_path_buf();
    config.embed.model_dir = model_dir;
    config.search.cache_mb = args.cache_mb;
    config.validate()?;
    let svc = MemoryService::open(config).await?;
    println!("RSS after opening: {:.1} MiB", rss_mib("VmRSS"));
    let mut rng = StdRng::seed_from_u64(7);
    let budget = args.cache_mb * (1 << 20);
    let mut most: u64 = 0;
    let mut ms = Vec::new();
    let every = (args.users / 10).max(1);
    for round in 0..args.rounds {
        for (i, (user, _)) in users.iter().enumerate() {
            let t = Instant::now();
            svc.search(
                memos_core::auth::DEFAULT_PROJECT,
                SearchInput {
                    user_id: user.clone(),
                    query: query(&mut rng),
                    ..Default::default()
                },
            )
            .await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            if (i + 1) % every == 0 {
                let (vectors, queries) = svc.cache_bytes();
                let held = vectors.unwrap_or(0) + queries;
                most = most.max(held);
                println!(
                    "round {} user {:>6}: caches {:.1} MiB (vectors {:.1}, queries {:.1}) of {} MiB; RSS {:.1} MiB; {}",
                    round + 1,
                    i + 1,
                    held as f64 / 1048576.0,
                    vectors.unwrap_or(0) as f64 / 1048576.0,
                    queries as f64 / 1048576.0,
                    args.cache_mb,
                    rss_mib("VmRSS"),
                    latency_line("search", &mut std::mem::take(&mut ms))
                );
            }
        }
    }
    println!(
        "most the caches held: {:.1} MiB of a {} MiB budget ({}); peak RSS {:.1} MiB",
        most as f64 / 1048576.0,
        args.cache_mb,
        if most <= budget { "within" } else { "OVER" },
        rss_mib("VmHWM")
    );
    Ok(())
}
