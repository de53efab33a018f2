//! [`PostgresStore`]: the store on PostgreSQL (with pgvector), for deployments that run
//! several stateless `memos serve` processes in front of one database.
//!
//! The same contract as the embedded store, checked by the same conformance suite: every
//! [`WriteBatch`] is one transaction that also bumps a revision row (which orders writers),
//! every query names the project and user, filters become SQL over `jsonb` columns, and
//! vectors live in a pgvector `vector` column. Columns, row mapping and filters as SQL are
//! shared with the embedded store ([`super::sql`]); the search the store does itself is in
//! [`search`]. The schema is created by numbered migrations (`migrations/*.sql`) recorded
//! in `memos_migrations`; a schema name in the URL's `search_path` isolates tenants or
//! tests.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

mod mirror;
mod records;
mod search;
mod tls;
mod write;

use super::sql::{
    self, CHANGE_COLUMNS, Dialect, MEMORY_COLUMNS, MESSAGE_COLUMNS, Param, SqlRow, TASK_COLUMNS,
    filter_sql,
};
use super::{
    Lease, ListQuery, MemoryStore, Page, PoolUse, Revision, StoreSearch, StoredVector, WriteBatch,
};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::*;

/// Numbered schema migrations, one `.sql` file each in `migrations/`; each runs once, in
/// order, in its own transaction, and is recorded in `memos_migrations`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_memory_reasoning.sql"),
    include_str!("migrations/0003_shared_lexical_index.sql"),
    include_str!("migrations/0004_task_leases.sql"),
    include_str!("migrations/0005_embedding_seq.sql"),
    include_str!("migrations/0006_message_raw.sql"),
    include_str!("migrations/0007_docs.sql"),
    include_str!("migrations/0008_tag_index.sql"),
    include_str!("migrations/0009_postings.sql"),
    include_str!("migrations/0010_changes.sql"),
];

/// How long to wait for a new connection to the database.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a request waits for a free pooled connection before it fails.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest any one statement may run (index builds at start excepted).
const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Attempts of a write that the database aborted for a serialization failure or a deadlock.
const WRITE_ATTEMPTS: usize = 4;

/// The PostgreSQL-backed store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// `maintenance_work_mem` of vector index builds, in MB.
    index_memory_mb: usize,
    /// Streaming replicas that searches read from, if any.
    replicas: Option<Arc<Replicas>>,
    /// Copies of searched users' terms and vectors in RAM, once [`StoreSearch::prepare`]
    /// set a budget for them ([`mirror`]).
    mirrors: Arc<std::sync::OnceLock<mirror::Mirrors>>,
    /// The BM25 statistics read for a request's terms ([`search::RequestStats`]).
    stats: search::RequestStats,
}

/// The replicas searches go to, in turn, and what they did.
struct Replicas {
    pools: Vec<Pool>,
    next: AtomicUsize,
    wait: Duration,
    searches: AtomicU64,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn pg(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(e)
}

/// Most statements one connection keeps prepared. The fixed texts number a few dozen;
/// texts shaped by a request's filter can be many, and past this they run unprepared.
const PREPARED_PER_CONNECTION: usize = 256;

/// Statements prepared once per connection (deadpool's per-connection cache).
///
/// Why: a statement given as text costs two round trips (parse and describe, then bind
/// and execute) and PostgreSQL parses and analyses the text every time. Prepared, it is
/// one round trip and the parse is done; each execution is still planned for its values
/// (`plan_cache_mode`, set on every connection). Measured on the search path, where a
/// request runs about ten statements.
trait Prepared {
    /// `sql` prepared on this connection: from the cache, or prepared now (and kept while
    /// the cache has room).
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement>;
}

impl Prepared for deadpool_postgres::Client {
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        prepared_on(&self.statement_cache, self, sql).await
    }
}

impl Prepared for deadpool_postgres::Transaction<'_> {
    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        prepared_on(&self.statement_cache, self.client(), sql).await
    }
}

/// [`Prepared::prepared`] on a connection (`client`) and its statement cache.
async fn prepared_on(
    cache: &deadpool_postgres::StatementCache,
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<tokio_postgres::Statement> {
    if cache.size() < PREPARED_PER_CONNECTION {
        cache.prepare(client, sql).await
    } else {
        client.prepare(sql).await
    }
    .map_err(pg)
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A connection pool for a libpq URL (`field` names it in errors): its TLS settings
/// applied, a statement timeout on every connection.
fn pool(url: &str, max_connections: usize, field: &str) -> Result<(Pool, tls::Split)> {
    let (mut config, split) = driver_config(url)?;
    // A statement that runs away (a lock held by a stuck client, say) fails instead of
    // holding a request forever. Random reads priced as on SSD or in memory (PostgreSQL's
    // default of 4, for spinning disks, made the planner read every memory of a 100k user
    // to score BM25, 327 ms, instead of the rows the term index names, 110 ms). Options in
    // the URL come after, so they can change both.
    // Statements are kept prepared ([`Prepared`]) but planned for their values every time,
    // as when they were sent as text: a generic plan chosen on one user's size could
    // serve another user badly (a list ordered by time, a filter's index).
    let options = format!(
        "-c statement_timeout={} -c random_page_cost=1.1 -c plan_cache_mode=force_custom_plan {}",
        STATEMENT_TIMEOUT.as_millis(),
        config.get_options().unwrap_or_default()
    );
    config.options(options.trim_end());
    let manager = Manager::from_config(
        config,
        tls::connector(&split)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_connections.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| Error::Config(format!("{field}: {e}")))?;
    Ok((pool, split))
}

/// The driver's settings for a libpq URL, its TLS parameters taken out and applied, with
/// a connect timeout unless the URL sets one: what every connection starts from.
fn driver_config(url: &str) -> Result<(tokio_postgres::Config, tls::Split)> {
    let split = tls::split(url)?;
    let mut config: tokio_postgres::Config = split
        .url
        .parse()
        .map_err(|e| Error::Config(format!("store.url: {e}")))?;
    config.ssl_mode(split.mode.ssl_mode());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok((config, split))
}

/// What [`PostgresStore::check_connection`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// `server_version`, e.g. `18.1`.
    pub server_version: String,
    /// Whether the connection is encrypted.
    pub tls: bool,
}

impl PostgresStore {
    /// Connects (a pool of up to `max_connections`) and brings the schema up to date. The
    /// URL is libpq's (`postgres://user:pass@host:port/db?options=-csearch_path%3Dtenant`).
    ///
    /// TLS follows the URL's `sslmode` and `sslrootcert` as libpq reads them ([`tls`]).
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let (pool, split) = pool(url, max_connections, "store.url")?;
        let store = Self {
            pool,
            index_memory_mb: 1024,
            replicas: None,
            mirrors: Arc::default(),
            stats: search::request_stats(),
        };
        store.migrate().await?;
        store.backfill_terms().await?;
        // Operators check here that a managed database's URL got them an encrypted link.
        let row = store
            .client()
            .await?
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(pg)?;
        tracing::info!(tls = row.get::<_, bool>(0), sslmode = ?split.mode, "connected to PostgreSQL");
        Ok(store)
    }

    /// Sends searches to these streaming replicas of the primary, in turn (`store.replica_urls`);
    /// each waits at most `wait` for its replica to replay the primary's latest write, then
    /// reads the primary instead. Each replica gets a pool of `max_connections`.
    pub fn with_replicas(
        mut self,
        urls: &[String],
        max_connections: usize,
        wait: Duration,
    ) -> Result<Self> {
        if urls.is_empty() {
            return Ok(self);
        }
        let pools = urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                pool(u, max_connections, &format!("store.replica_urls[{i}]")).map(|p| p.0)
            })
            .collect::<Result<Vec<_>>>()?;
        self.replicas = Some(Arc::new(Replicas {
            pools,
            next: AtomicUsize::new(0),
            wait,
            searches: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }));
        Ok(self)
    }

    /// A connection for a search: a replica that has replayed everything the primary had
    /// written when the search began, so a client reads its own writes whichever server
    /// took them; the primary when there are no replicas, or none caught up in time, or
    /// one fails.
    pub(super) async fn search_client(&self) -> Result<deadpool_postgres::Client> {
        let Some(r) = &self.replicas else {
            return self.client().await;
        };
        // The insert position, not the write position: with asynchronous commit a commit
        // record can still sit in the WAL buffers, behind pg_current_wal_lsn().
        let lsn: String = self
            .client()
            .await?
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(pg)?
            .get(0);
        let i = r.next.fetch_add(1, Ordering::Relaxed) % r.pools.len();
        let deadline = tokio::time::Instant::now() + r.wait;
        // A replica that is down must not hold searches for the pool's connect timeout:
        // getting a connection shares the same wait.
        match tokio::time::timeout_at(deadline, r.pools[i].get()).await {
            Ok(Ok(c)) => loop {
                // A server that is no replica (pointed at by mistake) never counts as caught up.
                let caught = c
                    .query_one(
                        &c.prepared("SELECT CASE WHEN pg_is_in_recovery() \
                         THEN coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false) ELSE false END").await?,
                        &[&lsn],
                    )
                    .await
                    .map(|row| row.get::<_, bool>(0));
                match caught {
                    Ok(true) => {
                        r.searches.fetch_add(1, Ordering::Relaxed);
                        return Ok(c);
                    }
                    Ok(false) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(replica = i, error = %e, "a replica failed; searching the primary");
                        break;
                    }
                }
            },
            Ok(Err(e)) => {
                tracing::warn!(replica = i, error = %e, "no connection to a replica; searching the primary")
            }
            Err(_) => {
                tracing::warn!(
                    replica = i,
                    "no connection to a replica in time; searching the primary"
                )
            }
        }
        r.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.client().await
    }

    /// Connects once with the URL's settings, TLS included, and says what the connection
    /// is: the server's version and whether it is encrypted. Touches no schema, so it
    /// checks a URL before a store is opened on it.
    pub async fn check_connection(url: &str) -> Result<ConnectionInfo> {
        let (config, split) = driver_config(url)?;
        let (client, conn) = config.connect(tls::connector(&split)?).await.map_err(pg)?;
        let driver = tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                 coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(pg);
        drop(client);
        let _ = driver.await;
        let row = row?;
        Ok(ConnectionInfo {
            server_version: row.get(0),
            tls: row.get(1),
        })
    }

    /// Sets how much memory (MB) PostgreSQL may use to build a vector index (1024 unless
    /// set).
    pub fn with_index_memory_mb(mut self, mb: usize) -> Self {
        self.index_memory_mb = mb.max(64);
        self
    }

    /// Computes the terms of memories written before the lexical index lived in the
    /// database (SQL cannot run memos' tokenizer). A no-op once every row has them.
    async fn backfill_terms(&self) -> Result<()> {
        let mut c = self.client().await?;
        let mut done = 0usize;
        loop {
            let rows = c
                .query(
                    &c.prepared(&format!(
                        "SELECT {MEMORY_COLUMNS} FROM memories WHERE terms IS NULL ORDER BY seq LIMIT 1000"
                    )).await?,
                    &[],
                )
                .await
                .map_err(pg)?;
            if rows.is_empty() {
                break;
            }
            let mut seqs = Vec::with_capacity(rows.len());
            let mut terms = Vec::with_capacity(rows.len());
            for r in &rows {
                let (seq, m) = memory_from_row(r)?;
                seqs.push(seq as i64);
                // One text per row: arrays of arrays must be rectangular in PostgreSQL.
                terms.push(crate::text::terms(&m.index_text()).join("\u{1f}"));
            }
            // A write like any other: under a revision of its own, so the change log
            // orders it for servers' search copies.
            let tx = c.transaction().await.map_err(pg)?;
            bump_revision(&tx).await?;
            tx.execute(
                &tx.prepared(
                    "UPDATE memories m SET terms = string_to_array(x.t, E'\\x1f') \
                 FROM unnest($1::bigint[], $2::text[]) AS x(seq, t) WHERE m.seq = x.seq",
                )
                .await?,
                &[&seqs, &terms],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            done += rows.len();
        }
        if done > 0 {
            tracing::info!(memories = done, "computed lexical terms of older memories");
        }
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Unavailable(format!("database: {e}")))
    }

    /// One page of a `WHERE seq > $1 ORDER BY seq LIMIT $2` query whose column `seq_at`
    /// is the cursor.
    async fn scan<T>(
        &self,
        sql: &str,
        after: Option<u64>,
        limit: usize,
        seq_at: usize,
        item: fn(&Row) -> Result<T>,
    ) -> Result<(Vec<T>, Option<u64>)> {
        self.scan_with(sql, after, limit, &[], seq_at, item).await
    }

    /// [`Self::scan`] with more parameters, bound after the cursor and the limit (`$3`...).
    async fn scan_with<T>(
        &self,
        sql: &str,
        after: Option<u64>,
        limit: usize,
        extra: &[&(dyn ToSql + Sync)],
        seq_at: usize,
        item: fn(&Row) -> Result<T>,
    ) -> Result<(Vec<T>, Option<u64>)> {
        let c = self.client().await?;
        let (after, limit) = (after.map_or(0, |a| a as i64), limit as i64);
        let mut bound: Vec<&(dyn ToSql + Sync)> = vec![&after, &limit];
        bound.extend_from_slice(extra);
        let rows = c.query(&c.prepared(sql).await?, &bound).await.map_err(pg)?;
        let cursor = rows.last().map(|r| r.get::<_, i64>(seq_at) as u64);
        let items = rows.iter().map(item).collect::<Result<_>>()?;
        Ok((items, cursor))
    }

    /// Runs the migrations not yet recorded. An advisory lock makes concurrent starts of
    /// several servers take turns.
    async fn migrate(&self) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7235501); \
             CREATE TABLE IF NOT EXISTS memos_migrations (version INT PRIMARY KEY, applied BIGINT NOT NULL)",
        )
        .await
        .map_err(pg)?;
        let done: i32 = tx
            .query_one(
                &tx.prepared("SELECT coalesce(max(version), 0) FROM memos_migrations")
                    .await?,
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                &tx.prepared("INSERT INTO memos_migrations (version, applied) VALUES ($1, $2)")
                    .await?,
                &[&(i as i32 + 1), &now_millis()],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

fn vector_text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn vector_parse(s: &str) -> Vec<f32> {
    s.trim_matches(['[', ']'])
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// A PostgreSQL row as the shared mappers read it.
struct PgRow<'a>(&'a Row);

impl SqlRow for PgRow<'_> {
    fn text(&self, i: usize) -> Result<String> {
        self.0.try_get(i).map_err(pg)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.0.try_get(i).map_err(pg)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.0.try_get(i).map_err(pg)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.0.try_get(i).map_err(pg)
    }
    fn real(&self, i: usize) -> Result<f64> {
        // `confidence` is a REAL column.
        self.0.try_get::<_, f32>(i).map(f64::from).map_err(pg)
    }
    fn json(&self, i: usize) -> Result<Option<Value>> {
        self.0.try_get(i).map_err(pg)
    }
}

fn memory_from_row(r: &Row) -> Result<(u64, Memory)> {
    sql::memory(&PgRow(r))
}

fn change_from_row(r: &Row) -> Result<MemoryChange> {
    sql::change(&PgRow(r))
}

fn message_from_row(r: &Row) -> Result<Message> {
    sql::message(&PgRow(r))
}

fn task_from_row(r: &Row) -> Result<Task> {
    sql::task(&PgRow(r))
}

fn key_from_row(r: &Row) -> Result<ApiKey> {
    sql::key(&PgRow(r))
}

/// A shared filter parameter as a PostgreSQL one.
fn pg_param(p: Param) -> Box<dyn ToSql + Sync + Send> {
    match p {
        Param::Text(s) => Box::new(s),
        Param::Int(i) => Box::new(i),
    }
}

/// [`filter_sql`] in PostgreSQL's dialect, its parameters appended to `params`.
fn pg_filter(f: &Filter, table: &str, params: &mut Params) -> String {
    let mut fp = Vec::new();
    let cond = filter_sql(f, Dialect::Postgres, table, params.len(), &mut fp);
    params.extend(fp.into_iter().map(pg_param));
    cond
}

/// The items whose key does not come again later in `items`, in order: what applying them
/// one by one would leave.
fn last_of<T, K: std::hash::Hash + Eq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut last = std::collections::HashMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| last.get(&key(item)) == Some(i))
        .map(|(_, item)| item)
        .collect()
}

/// Whether the database aborted a transaction that may succeed when run again.
fn retryable(e: &Error) -> bool {
    use tokio_postgres::error::SqlState;
    let Error::Backend(source) = e else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// Takes the revision row and returns the next revision. Taken first in every write
/// transaction, the row lock orders concurrent writers, on one server or many.
async fn bump_revision(tx: &deadpool_postgres::Transaction<'_>) -> Result<i64> {
    Ok(tx
        .query_one(
            &tx.prepared(
                "UPDATE memos_meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            )
            .await?,
            &[],
        )
        .await
        .map_err(pg)?
        .get(0))
}

#[async_trait]
impl MemoryStore for PostgresStore {
    async fn write(&self, batch: WriteBatch) -> Result<Revision> {
        let mut attempt = 1;
        loop {
            match self.write_once(&batch).await {
                Err(e) if attempt < WRITE_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(attempt, error = %e, "write aborted by the database; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn revision(&self) -> Result<Revision> {
        let c = self.client().await?;
        let v: i64 = c
            .query_one(
                &c.prepared("SELECT value FROM memos_meta WHERE key = 'revision'")
                    .await?,
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(v as Revision)
    }

    async fn get_memories(&self, project_id: &str, ids: &[String]) -> Result<Vec<Memory>> {
        // Nothing to read (a search whose preference channel found none, every search
        // without preferences): no thread hand-off or round trip.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ANY($1) AND project_id = $2"
                ))
                .await?,
                &[&ids, &project_id],
            )
            .await
            .map_err(pg)?;
        let mut found: std::collections::HashMap<String, Memory> = rows
            .iter()
            .map(|r| memory_from_row(r).map(|(_, m)| (m.id.clone(), m)))
            .collect::<Result<_>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list_memories(&self, scope: &Scope, q: &ListQuery) -> Result<Page<Memory>> {
        let c = self.client().await?;
        let mut params: Params = vec![
            Box::new(scope.project_id.clone()),
            Box::new(scope.user_id.clone()),
        ];
        let mut cond = "project_id = $1 AND user_id = $2 AND ".to_string();
        cond.push_str(&super::sql::status_sql(q.statuses.as_deref()));
        if let Some(conv) = &q.conversation_id {
            params.push(Box::new(conv.clone()));
            cond.push_str(&format!(" AND conversation_id = ${}", params.len()));
        }
        if let Some(t) = q.exclude_type {
            params.push(Box::new(t.as_str().to_string()));
            cond.push_str(&format!(" AND memory_type <> ${}", params.len()));
        }
        if let Some(f) = &q.filter {
            cond.push_str(" AND ");
            cond.push_str(&pg_filter(f, "memories", &mut params));
        }
        let total: i64 = c
            .query_one(
                &c.prepared(&format!("SELECT count(*) FROM memories WHERE {cond}"))
                    .await?,
                &refs(&params),
            )
            .await
            .map_err(pg)?
            .get(0);
        params.push(Box::new(q.limit as i64));
        params.push(Box::new(q.offset as i64));
        let n = params.len();
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE {cond} \
                     ORDER BY create_time DESC, seq DESC LIMIT ${} OFFSET ${n}",
                    n - 1
                ))
                .await?,
                &refs(&params),
            )
            .await
            .map_err(pg)?;
        let items = rows
            .iter()
            .map(|r| memory_from_row(r).map(|(_, m)| m))
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            total: total as usize,
        })
    }

    async fn list_users(
        &self,
        project_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Page<UserSummary>> {
        let c = self.client().await?;
        let total: i64 = c
            .query_one(
                &c.prepared("SELECT count(DISTINCT user_id) FROM memories WHERE project_id = $1 AND status <> 'deleted'").await?,
                &[&project_id],
            )
            .await
            .map_err(pg)?
            .get(0);
        let rows = c
            .query(
                // Byte order, as the other stores sort ids, whatever the database's collation.
                &c.prepared(
                    r#"SELECT user_id, count(*), max(update_time) AS last FROM memories
                 WHERE project_id = $1 AND status <> 'deleted' GROUP BY user_id
                 ORDER BY last DESC, user_id COLLATE "C" LIMIT $2 OFFSET $3"#,
                )
                .await?,
                &[&project_id, &(limit as i64), &(offset as i64)],
            )
            .await
            .map_err(pg)?;
        let items = rows
            .iter()
            .map(|r| UserSummary {
                user_id: r.get(0),
                memories: r.get::<_, i64>(1) as usize,
                last_update: r.get(2),
            })
            .collect();
        Ok(Page {
            items,
            total: total as usize,
        })
    }

    async fn list_conversations(
        &self,
        scope: &Scope,
        limit: usize,
        offset: usize,
    ) -> Result<Page<ConversationSummary>> {
        let c = self.client().await?;
        let total: i64 = c
            .query_one(
                &c.prepared("SELECT count(DISTINCT conversation_id) FROM messages WHERE project_id = $1 AND user_id = $2").await?,
                &[&scope.project_id, &scope.user_id],
            )
            .await
            .map_err(pg)?
            .get(0);
        let sql = super::sql::CONVERSATIONS
            .replacen('?', "$1", 1)
            .replacen('?', "$2", 1)
            .replacen('?', "$3", 1)
            .replacen('?', "$4", 1);
        let rows = c
            .query(
                &c.prepared(&sql).await?,
                &[
                    &scope.project_id,
                    &scope.user_id,
                    &(limit as i64),
                    &(offset as i64),
                ],
            )
            .await
            .map_err(pg)?;
        let items = rows
            .iter()
            .map(|r| ConversationSummary {
                conversation_id: r.get(0),
                messages: r.get::<_, i64>(1).max(0) as usize,
                first_chat_time: r.get(2),
                last_chat_time: r.get(3),
            })
            .collect();
        Ok(Page {
            items,
            total: total.max(0) as usize,
        })
    }

    async fn list_messages(
        &self,
        scope: &Scope,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE project_id = $1 AND user_id = $2 \
                     AND conversation_id = $3 ORDER BY chat_time DESC, seq DESC LIMIT $4"
                ))
                .await?,
                &[
                    &scope.project_id,
                    &scope.user_id,
                    &conversation_id,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg)?;
        let mut msgs = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>>>()?;
        msgs.reverse();
        Ok(msgs)
    }

    async fn task_messages(&self, task_id: &str) -> Result<Vec<Message>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE task_id = $1 ORDER BY seq"
                ))
                .await?,
                &[&task_id],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn get_task(&self, project_id: &str, task_id: &str) -> Result<Option<Task>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &c.prepared(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND project_id = $2"
                ))
                .await?,
                &[&task_id, &project_id],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        let c = self.client().await?;
        let rows = c
            .query(&c.prepared(sql::TASK_COUNTS).await?, &[])
            .await
            .map_err(pg)?;
        sql::task_counts(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn pool_use(&self) -> Option<PoolUse> {
        let s = self.pool.status();
        let (replica_searches, replica_fallbacks) = self.replicas.as_ref().map_or((0, 0), |r| {
            (
                r.searches.load(Ordering::Relaxed),
                r.fallbacks.load(Ordering::Relaxed),
            )
        });
        Some(PoolUse {
            open: s.size,
            idle: s.available,
            max: s.max_size,
            waiting: s.waiting,
            replica_searches,
            replica_fallbacks,
        })
    }

    async fn claim_tasks(&self, lease: &Lease, now: Millis, limit: usize) -> Result<Vec<Task>> {
        let c = self.client().await?;
        // SKIP LOCKED: servers claiming at the same moment pass over each other's rows
        // instead of waiting, and no row goes to two of them.
        let rows = c
            .query(
                &c.prepared(&format!(
                    "UPDATE tasks SET owner = $1, lease_until = $2 WHERE id IN \
                     (SELECT id FROM tasks WHERE status = 'running' AND coalesce(lease_until, 0) < $3 \
                      ORDER BY create_time, seq LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {TASK_COLUMNS}"
                )).await?,
                &[&lease.owner, &lease.until, &now, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        tasks.sort_by_key(|t| t.create_time);
        Ok(tasks)
    }

    async fn renew_task(&self, task_id: &str, lease: &Lease) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.execute(
            &c.prepared("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND owner = $3 AND status = 'running'").await?,
            &[&lease.until, &task_id, &lease.owner],
        )
        .await
        .map_err(pg)?
            > 0)
    }

    async fn delete_user(&self, scope: &Scope) -> Result<(usize, Revision)> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let rev = bump_revision(&tx).await?;
        let p: [&(dyn ToSql + Sync); 2] = [&scope.project_id, &scope.user_id];
        // Counted as the client saw them: soft-deleted ones were already gone.
        let n: i64 = tx
            .query_one(
                &tx.prepared("SELECT count(*) FROM memories WHERE project_id = $1 AND user_id = $2 AND status <> 'deleted'").await?,
                &p,
            )
            .await
            .map_err(pg)?
            .get(0);
        for table in [
            "memories",
            "messages",
            "tasks",
            "embeddings",
            "history",
            "docs",
        ] {
            tx.execute(
                &tx.prepared(&format!(
                    "DELETE FROM {table} WHERE project_id = $1 AND user_id = $2"
                ))
                .await?,
                &p,
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok((n as usize, rev as Revision))
    }

    async fn user_exists(&self, scope: &Scope) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.query_one(
            &c.prepared(
                "SELECT EXISTS (SELECT 1 FROM memories WHERE project_id = $1 AND user_id = $2) \
             OR EXISTS (SELECT 1 FROM messages WHERE project_id = $1 AND user_id = $2) \
             OR EXISTS (SELECT 1 FROM docs WHERE project_id = $1 AND user_id = $2)",
            )
            .await?,
            &[&scope.project_id, &scope.user_id],
        )
        .await
        .map_err(pg)?
        .get(0))
    }

    async fn embeddings(&self, scope: &Scope, model: &str) -> Result<Vec<StoredVector>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(
                    "SELECT e.memory_id, coalesce(m.memory_time, m.create_time), e.vector::text, \
                 CASE WHEN m.status = 'archived' THEN m.update_time END FROM embeddings e \
                 JOIN memories m ON m.id = e.memory_id \
                 WHERE e.project_id = $1 AND e.user_id = $2 AND e.model = $3 \
                 AND m.status IN ('activated', 'archived')",
                )
                .await?,
                &[&scope.project_id, &scope.user_id, &model],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| StoredVector {
                id: r.get(0),
                time: r.get(1),
                vector: vector_parse(r.get::<_, &str>(2)),
                archived_at: r.get(3),
            })
            .collect())
    }

    async fn missing_embeddings(
        &self,
        model: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        self.scan_with(
            &format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE seq > $1 \
                 AND status IN ('activated', 'archived') \
                 AND NOT EXISTS \
                 (SELECT 1 FROM embeddings e WHERE e.memory_id = memories.id AND e.model = $3) \
                 ORDER BY seq LIMIT $2"
            ),
            after,
            limit,
            &[&model],
            0,
            |r| memory_from_row(r).map(|(_, m)| m),
        )
        .await
    }

    async fn lacking_embeddings(
        &self,
        project_id: &str,
        ids: &[String],
        model: &str,
    ) -> Result<Vec<Memory>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ANY($1) AND project_id = $2 \
                     AND status IN ('activated', 'archived') AND NOT EXISTS \
                     (SELECT 1 FROM embeddings e WHERE e.memory_id = memories.id AND e.model = $3) \
                     ORDER BY seq"
                ))
                .await?,
                &[&ids, &project_id, &model],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| memory_from_row(r).map(|(_, m)| m))
            .collect()
    }

    async fn history(&self, project_id: &str, memory_id: &str) -> Result<Vec<MemoryChange>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM history WHERE memory_id = $1 AND project_id = $2 ORDER BY seq"
                )).await?,
                &[&memory_id, &project_id],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(change_from_row).collect()
    }

    fn searcher(self: Arc<Self>) -> Option<Arc<dyn StoreSearch>> {
        Some(self)
    }
}
