//! The `memos` binary: runs the server and the scripting commands. Everything it does is a
//! call into `memos-core` or `memos-server`; this file only parses flags, layers them over
//! the configuration and turns errors into exit codes.

mod bench;
mod mcp;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

/// mimalloc instead of glibc's allocator: a search allocates and frees many short-lived
/// buffers (the encoder's activations, the scan's scores, JSON), and glibc spent about 9% of
/// a 1-client search's CPU in `malloc`, `free` and their consolidation (`perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Args, Parser, Subcommand};
use memos_core::model::Role;
use memos_core::service::{AddInput, NewMessage, SearchInput};
use memos_core::{Config, MemoryService, auth, filter::Filter, time};
use memos_server::http::wire::MemoryDetail;

/// memos: a fast, self-hosted, MemOS-compatible long-term memory service for LLM apps.
///
/// Start a server with `MEMOS_API_KEY=some-secret memos serve`, then point any MemOS
/// client at http://127.0.0.1:8000/api/openmem/v1 with that key.
#[derive(Debug, Parser)]
#[command(name = "memos", version, propagate_version = true)]
struct Cli {
    /// Configuration file (default: ./memos.toml when present). Environment variables
    /// MEMOS__SECTION__KEY override it, and flags override both.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory of the embedded store (default: ./memos-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (MemOS cloud API under /api/openmem/v1, health at /health).
    Serve(ServeArgs),
    /// Manage API keys: each key grants one project.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Add one message to a user's memory, straight into the data directory.
    Add(AddArgs),
    /// Search a user's memories in the data directory and print them as JSON.
    Search(SearchArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Copy a whole deployment between backends, losslessly: memories (any status),
    /// messages, tasks, history, vectors and API keys. The target must be empty; stop the
    /// servers on the source first.
    Migrate(transfer::MigrateArgs),
    /// Export one user's data as JSON Lines (memories with their history, the chat log,
    /// profiles; vectors with --vectors). Reads the store only: safe beside a running server.
    Export(transfer::ExportArgs),
    /// Import an export into a project, ids kept; the user must hold nothing there yet.
    Import(transfer::ImportArgs),
    /// Back up the embedded store while it serves: a consistent copy of the database into
    /// a new directory (SQLite's backup API). Restore by serving that directory.
    Backup(transfer::BackupArgs),
    /// The MCP server over stdio, for desktop agent clients: the memory tools, calling a
    /// running server (`--url`) or this data directory.
    Mcp(mcp::McpArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Retrieval quality on a memret/1 file (LoCoMo): recall and nDCG at message and session
    /// level, BM25 baseline beside the hybrid retriever, plus ingest and search timings.
    Retrieval(bench::retrieval::RetrievalArgs),
    /// Embedding speed: query latency one at a time, document throughput in batches.
    Embed(bench::embed::EmbedArgs),
    /// Load: synthetic users at 1k/100k/1M memories, concurrent clients over real HTTP;
    /// latency percentiles, throughput, ingest speed and peak RSS.
    Load(bench::load::LoadArgs),
    /// Extraction quality: precision and recall of the fast path on labelled sentences.
    Extract(bench::extract::ExtractArgs),
    /// RAM under many users: round-robin searches over synthetic users, what the bounded
    /// search caches hold against `search.cache_mb`, and RSS.
    Cache(bench::cache::CacheArgs),
    /// Preference retrieval: a preference said in one conversation, a later question that
    /// never names it; how often the preference comes back at 1, 3 and 6.
    Preferences(bench::preferences::PreferencesArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long)]
    port: Option<u16>,
    /// Storage backend: `embedded` (SQLite + tantivy in the data directory), `postgres` or
    /// `memory`.
    #[arg(long, value_name = "BACKEND")]
    store: Option<String>,
    /// Database URL for `--store postgres` (postgres://user:pass@host:5432/db).
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it. It is shown once; only its hash is stored.
    Create {
        /// The project the key grants; created on first use.
        #[arg(long, default_value = auth::DEFAULT_PROJECT)]
        project: String,
        /// A note to recognise the key by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (never the secrets).
    List,
    /// Revoke a key by its id (see `memos keys list`).
    Revoke {
        /// The key id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The end user.
    #[arg(long)]
    user: String,
    /// The conversation.
    #[arg(long, default_value = "cli")]
    conversation: String,
    /// Who said it: user or assistant.
    #[arg(long, default_value = "user")]
    role: String,
    /// The speaker's name.
    #[arg(long)]
    name: Option<String>,
    /// When it was said (ISO 8601 or epoch ms); default now.
    #[arg(long)]
    time: Option<String>,
    /// The project (default: `default`).
    #[arg(long, default_value = auth::DEFAULT_PROJECT)]
    project: String,
    /// The message text.
    #[arg(required = true)]
    text: Vec<String>,
}

#[derive(Debug, Args)]
struct SearchArgs {
    /// The end user.
    #[arg(long)]
    user: String,
    /// The current conversation, boosted.
    #[arg(long)]
    conversation: Option<String>,
    /// How many results.
    #[arg(long)]
    limit: Option<usize>,
    /// A MemOS filter as JSON.
    #[arg(long)]
    filter: Option<String>,
    /// Search as of this time (ISO 8601 or epoch ms).
    #[arg(long)]
    as_of: Option<String>,
    /// The project (default: `default`).
    #[arg(long, default_value = auth::DEFAULT_PROJECT)]
    project: String,
    /// Retrievers to use.
    #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
    mode: ModeArg,
    /// The query.
    #[arg(required = true)]
    query: Vec<String>,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    /// BM25 and embeddings, fused.
    Hybrid,
    /// BM25 only.
    Lexical,
    /// Embeddings only.
    Dense,
}

impl From<ModeArg> for memos_core::service::SearchMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Hybrid => Self::Hybrid,
            ModeArg::Lexical => Self::Lexical,
            ModeArg::Dense => Self::Dense,
        }
    }
}

fn main() -> std::process::ExitCode {
    pin_compute_threads();
    if let Err(e) = init_logs() {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `MEMOS_LOG` (default `info`), as text or, with
/// `MEMOS_LOG_FORMAT=json`, one JSON object per line for a log collector.
fn init_logs() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEMOS_LOG")
        .unwrap_or_else(|_| "info,tantivy=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("MEMOS_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().flatten_event(true).init(),
        Ok("text") | Ok("") | Err(_) => logs.init(),
        Ok(other) => anyhow::bail!("MEMOS_LOG_FORMAT must be text or json, not {other:?}"),
    }
    Ok(())
}

/// Sets `RAYON_NUM_THREADS` to the number of CPUs this process may use, unless the user set it.
///
/// candle reads that variable on every matrix product, and when it is missing counts the
/// physical cores by parsing `/proc/cpuinfo` each time: a quarter of a query embedding's time
/// here (28 ms -> 21 ms for e5 on two cores, `memos bench embed`).
fn pin_compute_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: called first thing in `main`, before the runtime or any other thread exists,
    // so nothing can read the environment concurrently.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        cfg.store.data_dir = d.clone();
    }
    Ok(cfg)
}

async fn open(cfg: Config) -> Result<Arc<MemoryService>> {
    let dir = cfg.store.data_dir.clone();
    // The cause says what failed (a lock held by another server, a newer schema); a full
    // disk, which SQLite reports only as an I/O error, is named by trying to write there.
    MemoryService::open(cfg).await.with_context(|| {
        let probe = dir.join(".memos-space-probe");
        let full = std::fs::write(&probe, [0u8; 4096])
            .is_err_and(|e| e.kind() == std::io::ErrorKind::StorageFull);
        let _ = std::fs::remove_file(&probe);
        let why = if full {
            " (the disk holding it is full)"
        } else {
            ""
        };
        format!("cannot open the data directory {}{why}", dir.display())
    })
}

async fn run(cli: Cli) -> Result<()> {
    let mut cfg = load_config(&cli)?;
    match cli.command {
        Command::Serve(args) => {
            if let Some(h) = args.host {
                cfg.server.host = h;
            }
            if let Some(p) = args.port {
                cfg.server.port = p;
            }
            if let Some(u) = args.store_url {
                cfg.store.url = u;
            }
            if let Some(s) = args.store {
                cfg.store.backend = s.parse()?;
            }
            cfg.validate()?;
            serve(cfg).await
        }
        Command::Keys(cmd) => keys(cfg, cmd).await,
        Command::Add(args) => add(cfg, args).await,
        Command::Search(args) => search(cfg, args).await,
        Command::Bench(BenchCommand::Retrieval(args)) => {
            bench::retrieval::retrieval(cfg, args).await
        }
        Command::Bench(BenchCommand::Embed(args)) => bench::embed::embed(cfg, args),
        Command::Bench(BenchCommand::Load(args)) => bench::load::load(cfg, args).await,
        Command::Bench(BenchCommand::Extract(args)) => {
            bench::extract::extract(cfg.llm.clone(), args).await
        }
        Command::Bench(BenchCommand::Cache(args)) => bench::cache::cache(cfg, args).await,
        Command::Bench(BenchCommand::Preferences(args)) => {
            bench::preferences::preferences(cfg, args).await
        }
        Command::Migrate(args) => transfer::migrate(args).await,
        Command::Export(args) => transfer::export(cfg, args).await,
        Command::Import(args) => transfer::import(cfg, args).await,
        Command::Backup(args) => transfer::backup(cfg, args).await,
        Command::Mcp(args) => mcp::mcp(cfg, args).await,
    }
}

async fn serve(cfg: Config) -> Result<()> {
    let addr = format!("{}:{}", cfg.server.host, cfg.server.port);
    let service = open(cfg).await?;
    match std::env::var("MEMOS_API_KEY") {
        Ok(k) if !k.trim().is_empty() => {
            service.seed_key(k.trim(), auth::DEFAULT_PROJECT).await?;
        }
        _ => {
            if !service.has_live_key().await? {
                tracing::warn!(
                    "no API keys yet: create one with `memos keys create` or set MEMOS_API_KEY"
                );
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to find a port chosen with --port 0.
    println!("memos listening on http://{local}");
    tracing::info!(%local, "serving the MemOS API under /api/openmem/v1");
    memos_server::run(listener, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn keys(cfg: Config, cmd: KeysCommand) -> Result<()> {
    // The store alone, not the service: this runs beside a serving `memos serve` (whose
    // index lock a full service would wait for), and a revoked key fails its next request.
    let store = memos_core::store::open_beside_server(&cfg).await?;
    let store = store.as_ref();
    match cmd {
        KeysCommand::Create { project, label } => {
            let (key, secret) = auth::create_key(store, &project, &label).await?;
            eprintln!(
                "Created key {} for project `{}`. It is shown once; store it now:",
                key.id, key.project_id
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            println!(
                "{:<14} {:<20} {:<12} {:<26} LABEL",
                "ID", "PROJECT", "PREFIX", "STATE"
            );
            for k in store.list_keys().await? {
                let state = match k.revoked_time {
                    Some(t) => format!("revoked {}", time::to_date(t)),
                    None => format!("active since {}", time::to_date(k.create_time)),
                };
                println!(
                    "{:<14} {:<20} {:<12} {:<26} {}",
                    k.id, k.project_id, k.prefix, state, k.label
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !store
                .revoke_key(&id, memos_core::model::now_millis())
                .await?
            {
                bail!("no key with id `{id}`");
            }
            eprintln!("Revoked key {id}.");
        }
    }
    Ok(())
}

async fn add(cfg: Config, args: AddArgs) -> Result<()> {
    let role = Role::parse(&args.role)
        .with_context(|| format!("--role must be user or assistant, not `{}`", args.role))?;
    let chat_time = match &args.time {
        Some(t) => Some(
            time::parse_str(t)
                .with_context(|| format!("--time `{t}` is not ISO 8601 or epoch ms"))?,
        ),
        None => None,
    };
    let service = open(cfg).await?;
    let out = service
        .add(
            &args.project,
            AddInput::sync(
                args.user,
                args.conversation,
                vec![NewMessage {
                    role,
                    content: args.text.join(" "),
                    chat_time,
                    name: args.name,
                    message_id: None,
                    raw: None,
                }],
            ),
        )
        .await?;
    println!(
        "{}",
        serde_json::json!({"task_id": out.task_id, "memory_ids": out.memory_ids})
    );
    Ok(())
}

async fn search(cfg: Config, args: SearchArgs) -> Result<()> {
    let filter = match &args.filter {
        Some(f) => Filter::parse(&serde_json::from_str(f).context("--filter is not JSON")?)?,
        None => None,
    };
    let query_time = match &args.as_of {
        Some(t) => Some(
            time::parse_str(t)
                .with_context(|| format!("--as-of `{t}` is not ISO 8601 or epoch ms"))?,
        ),
        None => None,
    };
    let service = open(cfg).await?;
    let hits = service
        .search(
            &args.project,
            SearchInput {
                user_id: args.user,
                query: args.query.join(" "),
                conversation_id: args.conversation,
                limit: args.limit,
                filter,
                query_time,
                mode: args.mode.into(),
                since: None,
            },
        )
        .await?;
    let list: Vec<MemoryDetail> = hits.into_iter().map(MemoryDetail::from).collect();
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}
