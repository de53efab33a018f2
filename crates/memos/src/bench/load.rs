//! `memos bench load`: synthetic users at 1k, 100k and 1M memories in total (the biggest
//! user holding up to 100k), served by a real `memos serve` child process and driven by
//! concurrent clients over HTTP on loopback. Prints search and add latency percentiles,
//! throughput, fast-mode ingest speed and the server's peak RSS.
//!
//! Preloading a million memories through the API would take the embedding model hours on
//! two cores, so the preload writes straight into the store: messages and memories made by
//! the real fast extractor from synthetic chat, with vectors mixed from the real model's
//! embeddings of a few hundred template sentences (what the scan costs does not depend on
//! the values). The server then starts on that directory, rebuilding its lexical index as
//! after any restore, and everything measured afterwards goes through HTTP.
//!
//! `--store postgres --store-url URL --servers 2` preloads a fresh schema of that database
//! instead and runs that many `memos serve` processes on it, the clients spread over them:
//! the scale-out setup.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use memos_core::embed::{self, Embedder};
use memos_core::ingest::{AddContext, fast};
use memos_core::model::{Memory, Message, Role, Scope};
use memos_core::store::{EmbeddedStore, Embedding, MemoryStore, PostgresStore, WriteBatch};
use memos_core::{Config, time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::latency_line;

const KEY: &str = "bench-load-key";
/// Messages per synthetic session (one add).
const SESSION: usize = 20;

/// Arguments of `memos bench load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Total memories per run, comma-separated; one run each.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    memories: Vec<usize>,
    /// Memories of the biggest user (capped by the total); the rest go to users of
    /// `--user-size` each.
    #[arg(long, default_value_t = 100_000)]
    big_user: usize,
    /// Memories of each other user.
    #[arg(long, default_value_t = 1_000)]
    user_size: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds of mixed search/add traffic per run (and half as long of pure ingest).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Share of mixed-traffic requests that are adds.
    #[arg(long, default_value_t = 0.1)]
    add_share: f64,
    /// Embedding model directory (default: the configured one). `none` measures BM25 only.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Keep each run's data directory under here (default: a temporary directory).
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// `embedded` (the data directory) or `postgres` (a fresh schema of `--store-url`).
    #[arg(long, default_value = "embedded")]
    store: String,
    /// PostgreSQL URL for `--store postgres`.
    #[arg(long, default_value = "")]
    store_url: String,
    /// `memos serve` processes on the store (more than one needs `--store postgres`).
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// With `--store postgres`: keep a schema an earlier run preloaded (`bench_load_<total>`)
    /// instead of preloading it again.
    #[arg(long)]
    reuse_schema: bool,
}

/// Where one run keeps its data, as `memos serve` flags.
fn store_flags(args: &LoadArgs, url: &str) -> Vec<String> {
    if args.store == "postgres" {
        vec![
            "--store".into(),
            "postgres".into(),
            "--store-url".into(),
            url.into(),
        ]
    } else {
        vec![]
    }
}

/// A URL of `base` whose search path is the schema `name`, made empty for this run unless
/// `reuse` and it holds memories already; says whether it was reused.
async fn bench_schema(base: &str, name: &str, reuse: bool) -> Result<(String, bool)> {
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .context("connecting to --store-url")?;
    let conn = tokio::spawn(conn);
    let filled = reuse
        && admin
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{name}.memories")],
            )
            .await?
            .get::<_, bool>(0);
    if !filled {
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await?;
    }
    drop(admin);
    let _ = conn.await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((
        format!("{base}{sep}options=-c%20search_path%3D{name}%2Cpublic"),
        filled,
    ))
}

/// Vacuums and analyzes a freshly preloaded schema's tables and writes a checkpoint, as a
/// database that has run a while would be: otherwise autovacuum and the checkpointer work
/// on the 100k new rows during the measured traffic, and runs of one binary varied from
/// 37 to 65 ms p50.
async fn settle(base: &str, name: &str) -> Result<()> {
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    let tables: Vec<String> = admin
        .query(
            "SELECT quote_ident(table_name) FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| format!("{name}.{}", r.get::<_, String>(0)))
        .collect();
    admin
        .batch_execute(&format!("VACUUM ANALYZE {}", tables.join(", ")))
        .await?;
    // A role without the right to checkpoint measures without one.
    if let Err(e) = admin.batch_execute("CHECKPOINT").await {
        println!("no checkpoint after the preload: {e}");
    }
    drop(admin);
    let _ = conn.await;
    Ok(())
}

/// Vocabulary of the synthetic chat: enough combinations that texts rarely repeat.
const PEOPLE: [&str; 16] = [
    "Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jon", "Kira",
    "Liam", "Maya", "Noah", "Olivia", "Paul",
];
pub(crate) const ACTIVITIES: [&str; 16] = [
    "went hiking",
    "baked sourdough bread",
    "painted a sunset",
    "played tennis",
    "read a novel about sailing",
    "visited the art museum",
    "cooked spicy noodles",
    "started learning the guitar",
    "adopted a puppy",
    "ran a half marathon",
    "planted tomatoes",
    "went to a jazz concert",
    "fixed an old bicycle",
    "wrote a short story",
    "took a pottery class",
    "watched a documentary about whales",
];
const PLACES: [&str; 16] = [
    "near the lake",
    "in Berlin",
    "at the community center",
    "in the mountains",
    "downtown",
    "at my cousin's house",
    "in Kyoto",
    "by the river",
    "at the library",
    "in the park",
    "on the coast",
    "at school",
    "in Lisbon",
    "at the gym",
    "in the garden",
    "at the studio",
];
const FEELINGS: [&str; 8] = [
    "It was wonderful.",
    "I felt really proud.",
    "It was harder than I expected.",
    "I want to do it again soon.",
    "My family loved it.",
    "It reminded me of my childhood.",
    "I was exhausted afterwards.",
    "It made my week.",
];
const REPLIES: [&str; 8] = [
    "That sounds amazing, how long did it take?",
    "I love that! Who came with you?",
    "Wow, what inspired you to try it?",
    "That's great, tell me more about it.",
    "Nice! Would you recommend it?",
    "How did you feel about it afterwards?",
    "That must have been fun. What's next?",
    "Impressive! Did you take any photos?",
];

fn user_turn(rng: &mut StdRng) -> (usize, String) {
    let a = rng.random_range(0..ACTIVITIES.len());
    let text = format!(
        "Yesterday I {} with {} {}. {}",
        ACTIVITIES[a],
        PEOPLE[rng.random_range(0..PEOPLE.len())],
        PLACES[rng.random_range(0..PLACES.len())],
        FEELINGS[rng.random_range(0..FEELINGS.len())]
    );
    (a, text)
}

pub(crate) fn query(rng: &mut StdRng) -> String {
    format!(
        "When did I {} with {}?",
        ACTIVITIES[rng.random_range(0..ACTIVITIES.len())]
            .split_once(' ')
            .map_or("", |(_, rest)| rest),
        PEOPLE[rng.random_range(0..PEOPLE.len())]
    )
}

/// Runs the load benchmark and prints its figures.
pub(crate) async fn load(config: Config, args: LoadArgs) -> Result<()> {
    let model_dir = match args.model_dir.as_deref() {
        Some(d) if d.as_os_str() == "none" => None,
        Some(d) => Some(d.to_path_buf()),
        None if config.embed.model_dir.as_os_str().is_empty() => None,
        None => Some(config.embed.model_dir.clone()),
    };
    if args.store == "postgres" && args.store_url.is_empty() {
        bail!("--store postgres needs --store-url");
    }
    if args.servers > 1 && args.store != "postgres" {
        bail!("several servers share one store only with --store postgres");
    }
    let embedder: Option<Arc<dyn Embedder>> = match &model_dir {
        Some(d) => Some(Arc::from(
            embed::load(d, config.embed.precision)
                .with_context(|| format!("loading the model in {}", d.display()))?,
        )),
        None => None,
    };
    let templates = match &embedder {
        Some(e) => {
            let texts: Vec<String> = ACTIVITIES.iter().map(|a| format!("User: I {a}.")).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            e.embed_documents(&refs)?
        }
        None => vec![],
    };
    println!(
        "memos bench load: {} store, {} server(s), {} clients, {:.0} s mixed traffic ({:.0}% adds) per run, model {}",
        args.store,
        args.servers,
        args.clients,
        args.seconds,
        args.add_share * 100.0,
        embedder.as_ref().map_or("none", |e| e.model_id())
    );
    let base_rss = {
        let tmp = tempfile::tempdir()?;
        let server = Server::start(tmp.path(), model_dir.as_deref(), &[]).await?;
        let rss = server.rss_kib("VmRSS");
        drop(server);
        rss
    };
    println!(
        "idle server RSS (model loaded, no data): {:.1} MiB",
        base_rss as f64 / 1024.0
    );
    for &total in &args.memories {
        let tmp = tempfile::tempdir()?;
        let dir = match &args.keep_dir {
            Some(k) => k.join(format!("load-{total}")),
            None => tmp.path().to_path_buf(),
        };
        run(
            &args,
            total,
            &dir,
            embedder.as_deref(),
            &templates,
            model_dir.as_deref(),
            base_rss,
        )
        .await?;
    }
    Ok(())
}

/// Users of one run: (user id, memories).
fn users(args: &LoadArgs, total: usize) -> Vec<(String, usize)> {
    let big = total.min(args.big_user);
    let mut out = vec![("big".to_string(), big)];
    let mut left = total - big;
    let mut i = 0;
    while left > 0 {
        let n = left.min(args.user_size.max(1));
        out.push((format!("user-{i}"), n));
        left -= n;
        i += 1;
    }
    out
}

async fn run(
    args: &LoadArgs,
    total: usize,
    dir: &Path,
    embedder: Option<&dyn Embedder>,
    templates: &[Vec<f32>],
    model_dir: Option<&Path>,
    base_rss: u64,
) -> Result<()> {
    let users = users(args, total);
    println!(
        "\n== {total} memories: one user of {}, {} users of up to {}",
        users[0].1,
        users.len() - 1,
        args.user_size
    );
    let started = Instant::now();
    let url = if args.store == "postgres" {
        let name = format!("bench_load_{total}");
        let (url, reused) = bench_schema(&args.store_url, &name, args.reuse_schema).await?;
        if reused {
            println!("reusing the preloaded schema {name}");
        } else {
            let store = PostgresStore::connect(&url, 4).await?;
            preload(&store, &users, embedder, templates).await?;
            settle(&args.store_url, &name).await?;
            println!(
                "preload (straight into a fresh PostgreSQL schema, then VACUUM ANALYZE): {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        url
    } else if dir.join("memos.db").is_file() {
        println!("reusing the preloaded data in {}", dir.display());
        String::new()
    } else {
        std::fs::create_dir_all(dir)?;
        preload(&EmbeddedStore::open(dir)?, &users, embedder, templates).await?;
        println!(
            "preload (straight into the store): {:.1} s",
            started.elapsed().as_secs_f64()
        );
        String::new()
    };
    let flags = store_flags(args, &url);
    let mut servers = Vec::new();
    for i in 0..args.servers.max(1) {
        let started = Instant::now();
        // Each server has a data directory of its own; with PostgreSQL it holds nothing.
        let own = dir.join(format!("server-{i}"));
        let server_dir = if args.store == "postgres" {
            own.as_path()
        } else {
            dir
        };
        servers.push(Arc::new(
            Server::start(server_dir, model_dir, &flags).await?,
        ));
        println!(
            "server {i} start ({}): {:.1} s",
            if args.store == "postgres" {
                "vector index built in the database by the first"
            } else {
                "lexical index rebuilt from the store"
            },
            started.elapsed().as_secs_f64()
        );
    }
    let server = servers[0].clone();

    // Warm-up: one search per user on every server loads its vectors (and on PostgreSQL
    // each server's copy of the user), as a running server has them. Without it a second
    // server's first search of a big user counted the copy's load, seconds, as its time.
    let started = Instant::now();
    let names: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    let chunks: Vec<Vec<String>> = names
        .chunks(names.len().div_ceil(args.clients).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let mut warm = Vec::new();
    for (c, chunk) in chunks.iter().enumerate() {
        for k in 0..servers.len() {
            let s = servers[(c + k) % servers.len()].clone();
            let chunk = chunk.clone();
            warm.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(1);
                for u in chunk {
                    s.search(&u, &query(&mut rng)).await?;
                }
                anyhow::Ok(())
            }));
        }
    }
    for w in warm {
        w.await??;
    }
    println!(
        "warm-up (one search per user on each server): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let warm_rss = server.rss_kib("VmRSS");
    println!(
        "server RSS after warm-up (every user's vectors loaded): {:.1} MiB, {:.0} bytes per memory above the idle server",
        warm_rss as f64 / 1024.0,
        (warm_rss.saturating_sub(base_rss) * 1024) as f64 / total as f64
    );

    // Mixed traffic.
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let (s, names) = (servers[c % servers.len()].clone(), names.clone());
        let add_share = args.add_share;
        clients.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + c as u64);
            let (mut big, mut small, mut adds) = (Vec::new(), Vec::new(), Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                // Half the searches go to the biggest user, the worst case.
                let user = if names.len() == 1 || rng.random_bool(0.5) {
                    &names[0]
                } else {
                    &names[rng.random_range(1..names.len())]
                };
                let t = Instant::now();
                if rng.random_bool(add_share) {
                    s.add(user, &format!("live-{c}-{n}"), 10, &mut rng).await?;
                    adds.push(t.elapsed().as_secs_f64() * 1e3);
                } else {
                    s.search(user, &format!("{} ({n})", query(&mut rng)))
                        .await?;
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if user == &names[0] {
                        big.push(ms)
                    } else {
                        small.push(ms)
                    }
                }
                n += 1;
            }
            anyhow::Ok((big, small, adds))
        }));
    }
    let (mut big, mut small, mut adds) = (Vec::new(), Vec::new(), Vec::new());
    for (b, s, a) in join_clients(clients).await? {
        big.extend(b);
        small.extend(s);
        adds.extend(a);
    }
    let requests = big.len() + small.len() + adds.len();
    let added = adds.len() * 10;
    println!(
        "mixed traffic: {requests} requests in {:.0} s, {:.0} requests/s",
        args.seconds,
        requests as f64 / args.seconds
    );
    println!(
        "{}",
        latency_line(&format!("search, user of {}", users[0].1), &mut big)
    );
    if !small.is_empty() {
        println!(
            "{}",
            latency_line(&format!("search, users of {}", args.user_size), &mut small)
        );
    }
    println!("{}", latency_line("add (10 messages, sync)", &mut adds));
    if model_dir.is_some() {
        report_backlog(&servers).await?;
    }

    // Pure ingest: fast-mode adds of 20 messages to fresh users.
    let seconds = args.seconds / 2.0;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let s = servers[c % servers.len()].clone();
        clients.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(200 + c as u64);
            let mut sent = 0usize;
            let mut n = 0;
            while Instant::now() < deadline {
                s.add(
                    &format!("ingest-{c}-{}", n / 10),
                    &format!("ingest-{c}-{n}"),
                    SESSION,
                    &mut rng,
                )
                .await?;
                sent += SESSION;
                n += 1;
            }
            anyhow::Ok(sent)
        }));
    }
    let sent: usize = join_clients(clients).await?.into_iter().sum();
    let rejected: u64 = servers
        .iter()
        .map(|s| s.rejected.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    if rejected > 0 {
        println!(
            "answered 429 and sent again after 10 ms (more clients than a project may run requests at once): {rejected}"
        );
    }
    println!(
        "ingest: {sent} messages in {seconds:.0} s, {:.0} messages/s (sync adds of {SESSION}, vectors in the background)",
        sent as f64 / seconds
    );
    let peak = server.rss_kib("VmHWM");
    let now = server.rss_kib("VmRSS");
    let memories = total + added + sent;
    println!(
        "server RSS: peak {:.1} MiB, now {:.1} MiB, with about {memories} memories stored: {:.0} bytes per memory above the idle server",
        peak as f64 / 1024.0,
        now as f64 / 1024.0,
        (peak.saturating_sub(base_rss) * 1024) as f64 / memories as f64
    );
    Ok(())
}

/// The clients' results; at the first failure the others are stopped before it returns,
/// so no request still runs when the servers and their data directory go away.
async fn join_clients<T>(clients: Vec<tokio::task::JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(clients.len());
    let mut failed = None;
    for c in clients {
        if failed.is_some() {
            c.abort();
            let _ = c.await;
            continue;
        }
        match c.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(v) => out.push(v),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Writes the users' synthetic chat, its memories and their vectors straight into the
/// store, a batch of sessions per transaction.
pub(crate) async fn preload(
    store: &dyn MemoryStore,
    users: &[(String, usize)],
    embedder: Option<&dyn Embedder>,
    templates: &[Vec<f32>],
) -> Result<()> {
    let model = embedder.map(|e| e.model_id().to_string());
    let mut rng = StdRng::seed_from_u64(42);
    let start = time::parse_str("2023-01-01T00:00:00Z").unwrap_or(0);
    let mut batch = WriteBatch::default();
    for (user, n) in users {
        let scope = Scope::new(memos_core::auth::DEFAULT_PROJECT, user.clone());
        let mut made = 0;
        let mut session = 0;
        while made < *n {
            let conv = format!("conv-{session}");
            let at = start + session as i64 * 86_400_000;
            let mut activity = Vec::new();
            let messages: Vec<Message> = (0..SESSION.min(n - made))
                .map(|i| {
                    let (role, text) = if i % 2 == 0 {
                        let (a, t) = user_turn(&mut rng);
                        activity.push(a);
                        (Role::User, t)
                    } else {
                        activity.push(*activity.last().unwrap_or(&0));
                        (
                            Role::Assistant,
                            REPLIES[rng.random_range(0..REPLIES.len())].to_string(),
                        )
                    };
                    let id = uuid::Uuid::new_v4().to_string();
                    Message {
                        message_id: id.clone(),
                        id,
                        scope: scope.clone(),
                        conversation_id: conv.clone(),
                        role,
                        name: None,
                        content: text,
                        chat_time: at + i as i64 * 60_000,
                        create_time: at,
                        task_id: format!("preload-{user}-{session}"),
                        raw: None,
                    }
                })
                .collect();
            let ctx = AddContext {
                scope: scope.clone(),
                conversation_id: conv,
                ..Default::default()
            };
            let memories = fast::extract(&ctx, &messages, None, at);
            if let Some(model) = &model {
                // Every memory (turns and the facts found in them) gets the vector of the
                // activity its first source message talks about.
                let activity_of = |m: &Memory| {
                    let first = &m.sources[0].message_id;
                    messages
                        .iter()
                        .position(|x| &x.message_id == first)
                        .map_or(0, |i| activity[i])
                };
                for m in &memories {
                    let a = &activity_of(m);
                    // The activity's real embedding, jittered so no two rows are equal.
                    let mut v: Vec<f32> = templates[*a]
                        .iter()
                        .map(|x| x + rng.random_range(-0.02..0.02))
                        .collect();
                    embed::normalize(&mut v);
                    batch.embeddings.push(Embedding {
                        memory_id: m.id.clone(),
                        scope: scope.clone(),
                        model: model.clone(),
                        vector: v,
                    });
                }
            }
            made += memories.len();
            batch.messages.extend(messages);
            batch.upsert_memories.extend(memories);
            session += 1;
            if batch.upsert_memories.len() >= 5_000 {
                store.write(std::mem::take(&mut batch)).await?;
            }
        }
    }
    store.write(batch).await?;
    Ok(())
}

/// How far the background embedders fell behind the mixed traffic's adds, and how long they
/// take to catch up once it stops: searches that ran fast because vectors were left for
/// later would show here.
async fn report_backlog(servers: &[Arc<Server>]) -> Result<()> {
    let started = Instant::now();
    // What the first round reads is what the traffic left.
    let mut shown: Vec<String> = Vec::new();
    loop {
        let mut left = Vec::new();
        for s in servers {
            left.push(s.backlog().await?);
        }
        if shown.is_empty() {
            shown = left
                .iter()
                .map(|b| b.map_or("a full pass".into(), |n| n.to_string()))
                .collect();
        }
        if left.iter().all(|b| *b == Some(0)) {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            println!(
                "memories waiting for a vector after the mixed traffic: {} (not caught up in 300 s)",
                shown.join(" + ")
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "memories waiting for a vector after the mixed traffic: {}, all embedded {:.1} s later",
        shown.join(" + "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A `memos serve` child process on a free loopback port.
struct Server {
    child: Child,
    base: String,
    /// The server's root, where `/health` is.
    root: String,
    client: reqwest::Client,
    /// Requests answered 429 (more at once than `limits` lets a project run) and sent again.
    rejected: std::sync::atomic::AtomicU64,
}

impl Server {
    async fn start(dir: &Path, model_dir: Option<&Path>, flags: &[String]) -> Result<Server> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir)
            .args(flags)
            .env("MEMOS_API_KEY", KEY)
            // A million vectors need about 3 GB to build PostgreSQL's HNSW index in memory.
            .env("MEMOS__STORE__VECTOR_INDEX_MEMORY_MB", "4096")
            .env(
                "MEMOS__EMBED__MODEL_DIR",
                model_dir.map_or(PathBuf::new(), Path::to_path_buf),
            )
            .env("MEMOS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting memos serve")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("memos listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(1800)))
            .await?
            .map_err(|_| anyhow!("memos serve did not start"))?;
        Ok(Server {
            child,
            base: format!("{url}/api/openmem/v1"),
            root: url,
            client: reqwest::Client::new(),
            rejected: Default::default(),
        })
    }

    /// Posts `body`, sending it again after a pause when the server answers 429, as its
    /// message asks ("retry shortly"): more clients than a project may run requests at
    /// once then queue instead of failing the run.
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let resp = loop {
            let resp = self
                .client
                .post(format!("{}/{path}", self.base))
                .header("Authorization", format!("Token {KEY}"))
                .json(&body)
                .send()
                .await?;
            if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
                break resp;
            }
            self.rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() || body["code"] != 0 {
            bail!("{path} failed: {status} {body}");
        }
        Ok(body)
    }

    async fn search(&self, user: &str, query: &str) -> Result<()> {
        self.post(
            "search/memory",
            json!({"user_id": user, "query": query, "memory_limit_number": 10}),
        )
        .await?;
        Ok(())
    }

    async fn add(&self, user: &str, conv: &str, n: usize, rng: &mut StdRng) -> Result<()> {
        let messages: Vec<Value> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    json!({"role": "user", "content": user_turn(rng).1})
                } else {
                    json!({"role": "assistant", "content": REPLIES[i % REPLIES.len()]})
                }
            })
            .collect();
        self.post(
            "add/message",
            json!({"user_id": user, "conversation_id": conv, "messages": messages}),
        )
        .await?;
        Ok(())
    }

    /// Memories this server wrote that still wait for a vector (`/health`), or `None` while
    /// it has a pass over the whole store to do.
    async fn backlog(&self) -> Result<Option<u64>> {
        let health: Value = self
            .client
            .get(format!("{}/health", self.root))
            .send()
            .await?
            .json()
            .await?;
        Ok(health["embedding_backlog"].as_u64())
    }

    /// A `/proc/<pid>/status` memory figure in KiB (0 where there is no procfs).
    fn rss_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
