//! Moving data: `memos export` / `memos import` (one user, JSON Lines) and `memos migrate`
//! (a whole deployment between backends), each with a progress bar on stderr that stays
//! hidden when stderr is not a terminal (scripts, CI logs).

use std::sync::Arc;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use memos_core::Config;
use memos_core::model::Scope;
use memos_core::service::{ExportRecord, export_user};

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The user.
    #[arg(long)]
    user: String,
    /// The project (default: `default`).
    #[arg(long, default_value = memos_core::auth::DEFAULT_PROJECT)]
    project: String,
    /// Include the memories' vectors (large; without them the importing server embeds the
    /// memories again).
    #[arg(long)]
    vectors: bool,
    /// Write here (atomically: a temporary file renamed when complete) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// An export (`memos export` or the API's `export/user`).
    file: PathBuf,
    /// The project to import into (default: `default`); the user and every id stay as
    /// exported.
    #[arg(long, default_value = memos_core::auth::DEFAULT_PROJECT)]
    project: String,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Where the copy goes: a new (or empty) directory, a data directory of its own.
    dest: PathBuf,
}

/// `memos backup`: a consistent copy of the embedded store while the server serves.
pub(crate) async fn backup(cfg: Config, args: BackupArgs) -> Result<()> {
    use memos_core::config::StoreBackend;
    match cfg.store.backend {
        StoreBackend::Embedded => {}
        StoreBackend::Postgres | StoreBackend::Memory => bail!(
            "memos backup copies the embedded store; back PostgreSQL up with its own tools (pg_dump, pg_basebackup)"
        ),
    }
    let store = memos_core::store::EmbeddedStore::open_shared(&cfg.store.data_dir)
        .with_context(|| format!("opening {}", cfg.store.data_dir.display()))?;
    let bar = spinner();
    bar.set_message("copying the database");
    let started = std::time::Instant::now();
    let bytes = store.backup(&args.dest).await?;
    bar.finish_and_clear();
    eprintln!(
        "backed up {} ({:.1} MB) into {} in {:.1} s; start memos on it to restore (the index is rebuilt)",
        cfg.store.data_dir.display(),
        bytes as f64 / 1e6,
        args.dest.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A bar for work of unknown size: a spinner with a message.
fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// `memos export`: reads the store only, so it runs beside a serving server.
pub(crate) async fn export(cfg: Config, args: ExportArgs) -> Result<()> {
    let store = memos_core::store::open_beside_server(&cfg).await?;
    let scope = Scope::new(&args.project, &args.user);
    if !store.user_exists(&scope).await? {
        bail!(
            "project {} holds nothing of user {}",
            args.project,
            args.user
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportRecord>(256);
    let walk =
        tokio::spawn(async move { export_user(store.as_ref(), &scope, args.vectors, &tx).await });
    let (mut sink, tmp): (Box<dyn Write + Send>, Option<PathBuf>) = match &args.out {
        Some(path) => {
            let tmp = path.with_extension("part");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            (Box::new(std::io::BufWriter::new(f)), Some(tmp))
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
    };
    let bar = spinner();
    let mut lines = 0u64;
    while let Some(r) = rx.recv().await {
        serde_json::to_writer(&mut sink, &r)?;
        sink.write_all(b"\n")?;
        lines += 1;
        if lines.is_multiple_of(500) {
            bar.set_message(format!("{lines} records"));
        }
    }
    let n = walk.await??;
    sink.flush()?;
    drop(sink);
    if let (Some(tmp), Some(path)) = (tmp, &args.out) {
        std::fs::rename(&tmp, path)?;
    }
    bar.finish_and_clear();
    eprintln!(
        "exported {} memories, {} history entries, {} messages, {} vectors and {} documents of {}",
        n.memories, n.history, n.messages, n.embeddings, n.docs, args.user
    );
    Ok(())
}

/// `memos import`: the whole file is read and checked before anything is written; the
/// service is opened (on the embedded store no server may hold the data directory).
pub(crate) async fn import(cfg: Config, args: ImportArgs) -> Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            serde_json::from_str::<ExportRecord>(&line)
                .with_context(|| format!("{} line {}", args.file.display(), i + 1))?,
        );
    }
    let service = crate::open(cfg).await?;
    let bar = ProgressBar::new(records.len().saturating_sub(2) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let n = service
        .import_user(&args.project, records, &|done| {
            bar.set_position(done as u64)
        })
        .await?;
    bar.finish_and_clear();
    eprintln!(
        "imported {} memories, {} history entries, {} messages, {} vectors and {} documents into project {}",
        n.memories, n.history, n.messages, n.embeddings, n.docs, args.project
    );
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Where the data is: `embedded:<data dir>` or `postgres:<url>`.
    #[arg(long, value_name = "STORE")]
    from: String,
    /// Where it goes (empty): `embedded:<data dir>` or `postgres:<url>`.
    #[arg(long, value_name = "STORE")]
    to: String,
}

/// Opens a store named `embedded:<dir>` or `postgres:<url>`.
async fn open_store(spec: &str) -> Result<Arc<dyn memos_core::store::MemoryStore>> {
    use memos_core::store::{EmbeddedStore, PostgresStore};
    match spec.split_once(':') {
        Some(("embedded", dir)) if !dir.is_empty() => Ok(Arc::new(
            EmbeddedStore::open(std::path::Path::new(dir))
                .with_context(|| format!("opening the data directory {dir}"))?,
        )),
        Some(("postgres", url)) if !url.is_empty() => Ok(Arc::new(
            PostgresStore::connect(url, 4)
                .await
                .context("connecting to PostgreSQL")?,
        )),
        _ => bail!("`{spec}`: name a store as embedded:<data dir> or postgres:<url>"),
    }
}

pub(crate) async fn migrate(args: MigrateArgs) -> Result<()> {
    let from = open_store(&args.from).await?;
    let to = open_store(&args.to).await?;
    let started = std::time::Instant::now();
    let bar = spinner();
    let n = memos_core::store::copy_store(from.as_ref(), to.as_ref(), &|n| {
        bar.set_message(format!(
            "copied {} memories, {} messages, {} history entries, {} vectors",
            n.memories, n.messages, n.history, n.embeddings
        ));
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "migrated {} memories, {} messages, {} tasks, {} history entries, {} vectors, {} documents and {} API keys in {:.1} s",
        n.memories,
        n.messages,
        n.tasks,
        n.history,
        n.embeddings,
        n.docs,
        n.keys,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
