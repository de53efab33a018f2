//! [`PostgresStore`]: the store on PostgreSQL (with pgvector), for deployments that run
//! several stateless `memos serve` processes in front of one database.
//!
//! The same contract as the embedded store, checked by the same conformance suite: every
//! [`WriteBatch`] is one transaction that also bumps a revision row (which orders writers),
//! every query names the project and user, filters become SQL over `jsonb` columns, and
//! vectors live in a pgvector `vector` column. The schema is created by numbered
//! migrations recorded in `memos_migrations`; a schema name in the URL's `search_path`
//! isolates tenants or tests.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    Embedding, Lease, ListQuery, MemoryStore, Page, Revision, StoreSearch, StoredVector, WriteBatch,
};
use crate::error::{Error, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::model::*;
use crate::search::{Candidate, TimeRange};

/// Numbered schema migrations; each runs once, in order, in its own transaction.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE memos_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO memos_meta (key, value) VALUES ('revision', 0);
CREATE TABLE memories (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    memory_key TEXT NOT NULL,
    memory_value TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    memory_time BIGINT,
    status TEXT NOT NULL,
    confidence REAL NOT NULL,
    tags JSONB NOT NULL,
    info JSONB NOT NULL,
    agent_id TEXT,
    app_id TEXT,
    sources JSONB NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE INDEX memories_scope ON memories (project_id, user_id, create_time DESC, seq DESC);
CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT,
    content TEXT NOT NULL,
    chat_time BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    task_id TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages (project_id, user_id, conversation_id, chat_time);
CREATE INDEX messages_task ON messages (task_id);
CREATE TABLE tasks (
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payload JSONB NOT NULL,
    memory_ids JSONB NOT NULL,
    error TEXT,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, create_time);
CREATE TABLE embeddings (
    memory_id TEXT NOT NULL,
    model TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    vector vector NOT NULL,
    PRIMARY KEY (memory_id, model)
);
CREATE INDEX embeddings_scope ON embeddings (project_id, user_id, model);
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY,
    memory_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    related_id TEXT,
    before TEXT,
    note TEXT NOT NULL
);
CREATE INDEX history_memory ON history (memory_id);
CREATE TABLE api_keys (
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    label TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    revoked_time BIGINT
);
"#,
    "ALTER TABLE memories ADD COLUMN reasoning TEXT;",
    // The shared lexical index: each memory's terms as memos' own tokenizer computes them
    // (jieba for Chinese, stemming for English), so the database cannot tokenize
    // differently from the embedded store. A GIN index over (scope, terms) finds a user's
    // memories holding any query term; document frequencies and lengths for BM25 are kept
    // by statement triggers in the same transaction as the write.
    r#"
CREATE EXTENSION IF NOT EXISTS btree_gin;
ALTER TABLE memories ADD COLUMN terms TEXT[];
CREATE INDEX memories_terms ON memories USING gin (project_id, user_id, terms);
CREATE TABLE memos_term_df (term TEXT PRIMARY KEY, df BIGINT NOT NULL);
INSERT INTO memos_meta (key, value) VALUES ('docs', 0), ('doc_terms', 0);
CREATE FUNCTION memos_terms_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memos_term_df (term, df)
        SELECT t, count(*) FROM new_rows, LATERAL (SELECT DISTINCT unnest(new_rows.terms) AS t) x
        GROUP BY t
        ON CONFLICT (term) DO UPDATE SET df = memos_term_df.df + excluded.df;
    UPDATE memos_meta SET value = value + CASE key
        WHEN 'docs' THEN (SELECT count(*) FROM new_rows WHERE terms IS NOT NULL)
        ELSE (SELECT coalesce(sum(cardinality(terms)), 0) FROM new_rows) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE FUNCTION memos_terms_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memos_term_df d SET df = d.df - x.n
        FROM (SELECT t, count(*) AS n FROM old_rows,
              LATERAL (SELECT DISTINCT unnest(old_rows.terms) AS t) y GROUP BY t) x
        WHERE d.term = x.t;
    UPDATE memos_meta SET value = value - CASE key
        WHEN 'docs' THEN (SELECT count(*) FROM old_rows WHERE terms IS NOT NULL)
        ELSE (SELECT coalesce(sum(cardinality(terms)), 0) FROM old_rows) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE FUNCTION memos_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only rows whose terms changed count; status changes and the like leave the stats be.
    UPDATE memos_term_df d SET df = d.df - x.n
        FROM (SELECT t, count(*) AS n FROM old_rows JOIN new_rows USING (seq),
              LATERAL (SELECT DISTINCT unnest(old_rows.terms) AS t) y
              WHERE old_rows.terms IS DISTINCT FROM new_rows.terms GROUP BY t) x
        WHERE d.term = x.t;
    INSERT INTO memos_term_df (term, df)
        SELECT t, count(*) FROM new_rows JOIN old_rows USING (seq),
        LATERAL (SELECT DISTINCT unnest(new_rows.terms) AS t) x
        WHERE old_rows.terms IS DISTINCT FROM new_rows.terms GROUP BY t
        ON CONFLICT (term) DO UPDATE SET df = memos_term_df.df + excluded.df;
    UPDATE memos_meta SET value = value + CASE key
        WHEN 'docs' THEN (SELECT count(*) FILTER (WHERE n.terms IS NOT NULL)
                                 - count(*) FILTER (WHERE o.terms IS NOT NULL)
                          FROM new_rows n JOIN old_rows o USING (seq))
        ELSE (SELECT coalesce(sum(cardinality(n.terms)), 0) - coalesce(sum(cardinality(o.terms)), 0)
              FROM new_rows n JOIN old_rows o USING (seq)) END
        WHERE key IN ('docs', 'doc_terms');
    RETURN NULL;
END $$;
CREATE TRIGGER memories_terms_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_added();
CREATE TRIGGER memories_terms_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_removed();
CREATE TRIGGER memories_terms_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memos_terms_changed();
"#,
    // Leases: which server's worker holds a running task, and until when.
    "ALTER TABLE tasks ADD COLUMN owner TEXT; ALTER TABLE tasks ADD COLUMN lease_until BIGINT;",
    // A write-order cursor over vectors, for `memos migrate`.
    "ALTER TABLE embeddings ADD COLUMN seq BIGSERIAL; CREATE INDEX embeddings_seq ON embeddings (seq);",
    // What a message held beyond text: tool calls, a tool_call_id, content parts.
    "ALTER TABLE messages ADD COLUMN raw JSONB;",
];

const MEMORY_COLUMNS: &str = "seq, id, project_id, user_id, conversation_id, memory_key, memory_value, memory_type, \
     memory_time, status, confidence, tags, info, agent_id, app_id, sources, create_time, update_time, reasoning";
const MESSAGE_COLUMNS: &str = "id, message_id, project_id, user_id, conversation_id, role, name, content, chat_time, create_time, task_id, raw";
const TASK_COLUMNS: &str =
    "id, project_id, user_id, status, payload, memory_ids, error, create_time, update_time";
const KEY_COLUMNS: &str = "id, project_id, hash, prefix, label, create_time, revoked_time";

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
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn pg(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend(e)
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Corrupt(format!("stored {what} `{value}`"))
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl PostgresStore {
    /// Connects (a pool of up to `max_connections`) and brings the schema up to date. The
    /// URL is libpq's (`postgres://user:pass@host:port/db?options=-csearch_path%3Dtenant`).
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("store.url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A statement that runs away (a lock held by a stuck client, say) fails instead of
        // holding a request forever. Options in the URL come after, so they can change it.
        let options = format!(
            "-c statement_timeout={} {}",
            STATEMENT_TIMEOUT.as_millis(),
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_end());
        let manager = Manager::from_config(
            config,
            NoTls,
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
            .map_err(|e| Error::Config(format!("store.url: {e}")))?;
        let store = Self {
            pool,
            index_memory_mb: 1024,
        };
        store.migrate().await?;
        store.backfill_terms().await?;
        Ok(store)
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
        let c = self.client().await?;
        let mut done = 0usize;
        loop {
            let rows = c
                .query(
                    &format!(
                        "SELECT {MEMORY_COLUMNS} FROM memories WHERE terms IS NULL ORDER BY seq LIMIT 1000"
                    ),
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
            c.execute(
                "UPDATE memories m SET terms = string_to_array(x.t, E'\\x1f') \
                 FROM unnest($1::bigint[], $2::text[]) AS x(seq, t) WHERE m.seq = x.seq",
                &[&seqs, &terms],
            )
            .await
            .map_err(pg)?;
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

    /// One attempt at [`MemoryStore::write`]: one transaction.
    async fn write_once(&self, batch: &WriteBatch) -> Result<Revision> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let rev = bump_revision(&tx).await?;
        // Each kind of row goes in as one statement over arrays (`unnest`), whatever the
        // batch size: one round trip instead of one per row.
        if !batch.messages.is_empty() {
            let ms = &batch.messages;
            tx.execute(
                &format!(
                    "INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], \
                     $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], \
                     $10::bigint[], $11::text[], $12::jsonb[])"
                ),
                &[
                    &ms.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.scope.project_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.scope.user_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.conversation_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.name.as_deref()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.chat_time).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.create_time).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.task_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.raw.as_ref()).collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !batch.upsert_memories.is_empty() {
            // One statement may not touch a row twice: the last version of a memory wins, as
            // it would row by row.
            let ms = last_of(&batch.upsert_memories, |m| m.id.clone());
            let ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
            let values: Vec<&str> = ms.iter().map(|m| m.value.as_str()).collect();
            // A vector describes a text: when the text changes, the vector goes.
            tx.execute(
                "DELETE FROM embeddings e USING memories m, unnest($1::text[], $2::text[]) AS x(id, value) \
                 WHERE m.id = x.id AND m.memory_value <> x.value AND e.memory_id = x.id",
                &[&ids, &values],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "INSERT INTO memories (id, project_id, user_id, conversation_id, memory_key, memory_value, \
                 memory_type, memory_time, status, confidence, tags, info, agent_id, app_id, sources, \
                 create_time, update_time, reasoning, terms) \
                 SELECT id, project_id, user_id, conversation_id, memory_key, memory_value, memory_type, \
                 memory_time, status, confidence, tags, info, agent_id, app_id, sources, create_time, \
                 update_time, reasoning, string_to_array(terms, E'\\x1f') \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::bigint[], $9::text[], $10::real[], $11::jsonb[], $12::jsonb[], $13::text[], \
                 $14::text[], $15::jsonb[], $16::bigint[], $17::bigint[], $18::text[], $19::text[]) \
                 AS x(id, project_id, user_id, conversation_id, memory_key, memory_value, memory_type, \
                 memory_time, status, confidence, tags, info, agent_id, app_id, sources, create_time, \
                 update_time, reasoning, terms) \
                 ON CONFLICT (id) DO UPDATE SET conversation_id = excluded.conversation_id, \
                 memory_key = excluded.memory_key, memory_value = excluded.memory_value, \
                 memory_type = excluded.memory_type, memory_time = excluded.memory_time, \
                 status = excluded.status, confidence = excluded.confidence, tags = excluded.tags, \
                 info = excluded.info, agent_id = excluded.agent_id, app_id = excluded.app_id, \
                 sources = excluded.sources, update_time = excluded.update_time, \
                 reasoning = excluded.reasoning, terms = excluded.terms",
                &[
                    &ids,
                    &ms.iter().map(|m| m.scope.project_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.scope.user_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.conversation_id.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
                    &values,
                    &ms.iter().map(|m| m.memory_type.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.memory_time).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.status.as_str()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.confidence).collect::<Vec<_>>(),
                    &ms.iter().map(|m| json(&m.tags)).collect::<Vec<_>>(),
                    &ms.iter().map(|m| Value::Object(m.info.clone())).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.agent_id.as_deref()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.app_id.as_deref()).collect::<Vec<_>>(),
                    &ms.iter().map(|m| json(&m.sources)).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.create_time).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.update_time).collect::<Vec<_>>(),
                    &ms.iter().map(|m| m.reasoning.as_deref()).collect::<Vec<_>>(),
                    &ms.iter()
                        .map(|m| crate::text::terms(&m.index_text()).join("\u{1f}"))
                        .collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !batch.delete_memories.is_empty() {
            for table in [
                "memories WHERE id",
                "embeddings WHERE memory_id",
                "history WHERE memory_id",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} = ANY($1)"),
                    &[&batch.delete_memories],
                )
                .await
                .map_err(pg)?;
            }
        }
        if !batch.embeddings.is_empty() {
            let es = last_of(&batch.embeddings, |e| {
                (e.memory_id.clone(), e.model.clone())
            });
            tx.execute(
                "INSERT INTO embeddings (memory_id, model, project_id, user_id, vector) \
                 SELECT memory_id, model, project_id, user_id, vector::vector \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 AS x(memory_id, model, project_id, user_id, vector) \
                 ON CONFLICT (memory_id, model) DO UPDATE SET vector = excluded.vector",
                &[
                    &es.iter().map(|e| e.memory_id.as_str()).collect::<Vec<_>>(),
                    &es.iter().map(|e| e.model.as_str()).collect::<Vec<_>>(),
                    &es.iter()
                        .map(|e| e.scope.project_id.as_str())
                        .collect::<Vec<_>>(),
                    &es.iter()
                        .map(|e| e.scope.user_id.as_str())
                        .collect::<Vec<_>>(),
                    &es.iter()
                        .map(|e| vector_text(&e.vector))
                        .collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !batch.history.is_empty() {
            let hs = &batch.history;
            tx.execute(
                "INSERT INTO history (memory_id, project_id, user_id, time, kind, related_id, before, note) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                 $6::text[], $7::text[], $8::text[])",
                &[
                    &hs.iter().map(|h| h.memory_id.as_str()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.scope.project_id.as_str()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.scope.user_id.as_str()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.time).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.kind.as_str()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.related_id.as_deref()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.before.as_deref()).collect::<Vec<_>>(),
                    &hs.iter().map(|h| h.note.as_str()).collect::<Vec<_>>(),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if let Some(t) = &batch.task {
            let (owner, until, hold) = batch.task_lease_sql();
            let n = tx.execute(
                &format!(
                    "INSERT INTO tasks ({TASK_COLUMNS}, owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
                     memory_ids = excluded.memory_ids, error = excluded.error, update_time = excluded.update_time{hold}"
                ),
                &[
                    &t.id,
                    &t.scope.project_id,
                    &t.scope.user_id,
                    &t.status.as_str(),
                    &t.payload,
                    &json(&t.memory_ids),
                    &t.error,
                    &t.create_time,
                    &t.update_time,
                    &owner,
                    &until,
                ],
            )
            .await
            .map_err(pg)?;
            if n == 0 {
                // Dropping the transaction rolls the whole batch back.
                return Err(super::lease_lost(&t.id));
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(rev as Revision)
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
        let rows = c.query(sql, &bound).await.map_err(pg)?;
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
                "SELECT coalesce(max(version), 0) FROM memos_migrations",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO memos_migrations (version, applied) VALUES ($1, $2)",
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

fn from_json<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| corrupt(what, &e.to_string()))
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

fn memory_from_row(r: &Row) -> Result<(u64, Memory)> {
    let memory_type: String = r.get(7);
    let status: String = r.get(9);
    Ok((
        r.get::<_, i64>(0) as u64,
        Memory {
            id: r.get(1),
            scope: Scope::new(r.get::<_, String>(2), r.get::<_, String>(3)),
            conversation_id: r.get(4),
            key: r.get(5),
            value: r.get(6),
            memory_type: MemoryType::parse(&memory_type)
                .ok_or_else(|| corrupt("memory_type", &memory_type))?,
            memory_time: r.get(8),
            status: MemoryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
            confidence: r.get(10),
            tags: from_json(r.get(11), "tags")?,
            info: from_json(r.get(12), "info")?,
            agent_id: r.get(13),
            app_id: r.get(14),
            sources: from_json(r.get(15), "sources")?,
            create_time: r.get(16),
            update_time: r.get(17),
            reasoning: r.get(18),
        },
    ))
}

const CHANGE_COLUMNS: &str = "memory_id, project_id, user_id, time, kind, related_id, before, note";

fn change_from_row(r: &Row) -> Result<MemoryChange> {
    let kind: String = r.get(4);
    Ok(MemoryChange {
        memory_id: r.get(0),
        scope: Scope::new(r.get::<_, String>(1), r.get::<_, String>(2)),
        time: r.get(3),
        kind: ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind", &kind))?,
        related_id: r.get(5),
        before: r.get(6),
        note: r.get(7),
    })
}

fn message_from_row(r: &Row) -> Result<Message> {
    let role: String = r.get(5);
    Ok(Message {
        id: r.get(0),
        message_id: r.get(1),
        scope: Scope::new(r.get::<_, String>(2), r.get::<_, String>(3)),
        conversation_id: r.get(4),
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        name: r.get(6),
        content: r.get(7),
        chat_time: r.get(8),
        create_time: r.get(9),
        task_id: r.get(10),
        raw: r.get(11),
    })
}

fn task_from_row(r: &Row) -> Result<Task> {
    let status: String = r.get(3);
    Ok(Task {
        id: r.get(0),
        scope: Scope::new(r.get::<_, String>(1), r.get::<_, String>(2)),
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status", &status))?,
        payload: r.get(4),
        memory_ids: from_json(r.get(5), "memory_ids")?,
        error: r.get(6),
        create_time: r.get(7),
        update_time: r.get(8),
    })
}

fn key_from_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get(0),
        project_id: r.get(1),
        hash: r.get(2),
        prefix: r.get(3),
        label: r.get(4),
        create_time: r.get(5),
        revoked_time: r.get(6),
    }
}

/// A filter as SQL over `memories` (named `table` in the query), appending its parameters.
fn filter_sql(f: &Filter, table: &str, params: &mut Params) -> String {
    let next = |p: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(p);
        format!("${}", params.len())
    };
    let parts: Vec<String> = f
        .conditions
        .iter()
        .map(|c| match c {
            Condition::AgentId(a) => format!("{table}.agent_id = {}", next(Box::new(a.clone()), params)),
            Condition::AppId(a) => format!("{table}.app_id = {}", next(Box::new(a.clone()), params)),
            Condition::TagContains(t) => format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text({table}.tags) t WHERE lower(t) = {})",
                next(Box::new(t.clone()), params)
            ),
            Condition::MemoryType(t) => format!(
                "{table}.memory_type = {}",
                next(Box::new(t.as_str().to_string()), params)
            ),
            Condition::Time { field, min, max } => {
                let col = format!("{table}.{}", field.as_str());
                let mut s = format!("({col} IS NOT NULL");
                if let Some(lo) = min {
                    s.push_str(&format!(" AND {col} >= {}", next(Box::new(*lo), params)));
                }
                if let Some(hi) = max {
                    s.push_str(&format!(" AND {col} <= {}", next(Box::new(*hi), params)));
                }
                s.push(')');
                s
            }
            Condition::Info { key, value } => {
                let k = next(Box::new(key.clone()), params);
                let v = next(Box::new(value.clone()), params);
                // The canonical text of strings, numbers and booleans, as the filter module
                // defines it; objects, arrays and null never match.
                format!(
                    "(CASE jsonb_typeof({table}.info -> {k}) WHEN 'string' THEN {table}.info ->> {k} \
                     WHEN 'number' THEN ({table}.info -> {k})::text WHEN 'boolean' THEN ({table}.info -> {k})::text END) = {v}"
                )
            }
        })
        .collect();
    let join = if f.logic == Logic::And {
        " AND "
    } else {
        " OR "
    };
    format!("({})", parts.join(join))
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
            "UPDATE memos_meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
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
            .query_one("SELECT value FROM memos_meta WHERE key = 'revision'", &[])
            .await
            .map_err(pg)?
            .get(0);
        Ok(v as Revision)
    }

    async fn get_memories(&self, project_id: &str, ids: &[String]) -> Result<Vec<Memory>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ANY($1) AND project_id = $2"
                ),
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
        let mut cond = "project_id = $1 AND user_id = $2 AND status <> 'deleted'".to_string();
        if let Some(conv) = &q.conversation_id {
            params.push(Box::new(conv.clone()));
            cond.push_str(&format!(" AND conversation_id = ${}", params.len()));
        }
        if let Some(f) = &q.filter {
            cond.push_str(" AND ");
            cond.push_str(&filter_sql(f, "memories", &mut params));
        }
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM memories WHERE {cond}"),
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
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE {cond} \
                     ORDER BY create_time DESC, seq DESC LIMIT ${} OFFSET ${n}",
                    n - 1
                ),
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

    async fn list_messages(
        &self,
        scope: &Scope,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE project_id = $1 AND user_id = $2 \
                     AND conversation_id = $3 ORDER BY chat_time DESC, seq DESC LIMIT $4"
                ),
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
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE task_id = $1 ORDER BY seq"),
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
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND project_id = $2"),
                &[&task_id, &project_id],
            )
            .await
            .map_err(pg)?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn claim_tasks(&self, lease: &Lease, now: Millis, limit: usize) -> Result<Vec<Task>> {
        let c = self.client().await?;
        // SKIP LOCKED: servers claiming at the same moment pass over each other's rows
        // instead of waiting, and no row goes to two of them.
        let rows = c
            .query(
                &format!(
                    "UPDATE tasks SET owner = $1, lease_until = $2 WHERE id IN \
                     (SELECT id FROM tasks WHERE status = 'running' AND coalesce(lease_until, 0) < $3 \
                      ORDER BY create_time, seq LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {TASK_COLUMNS}"
                ),
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
            "UPDATE tasks SET lease_until = $1 WHERE id = $2 AND owner = $3 AND status = 'running'",
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
                "SELECT count(*) FROM memories WHERE project_id = $1 AND user_id = $2 AND status <> 'deleted'",
                &p,
            )
            .await
            .map_err(pg)?
            .get(0);
        for table in ["memories", "messages", "tasks", "embeddings", "history"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE project_id = $1 AND user_id = $2"),
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
            "SELECT EXISTS (SELECT 1 FROM memories WHERE project_id = $1 AND user_id = $2) \
             OR EXISTS (SELECT 1 FROM messages WHERE project_id = $1 AND user_id = $2)",
            &[&scope.project_id, &scope.user_id],
        )
        .await
        .map_err(pg)?
        .get(0))
    }

    async fn scan_memories(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        self.scan(
            &format!("SELECT {MEMORY_COLUMNS} FROM memories WHERE seq > $1 ORDER BY seq LIMIT $2"),
            after,
            limit,
            0,
            |r| memory_from_row(r).map(|(_, m)| m),
        )
        .await
    }

    async fn embeddings(&self, scope: &Scope, model: &str) -> Result<Vec<StoredVector>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT e.memory_id, coalesce(m.memory_time, m.create_time), e.vector::text, \
                 CASE WHEN m.status = 'archived' THEN m.update_time END FROM embeddings e \
                 JOIN memories m ON m.id = e.memory_id \
                 WHERE e.project_id = $1 AND e.user_id = $2 AND e.model = $3 \
                 AND m.status IN ('activated', 'archived')",
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
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ANY($1) AND project_id = $2 \
                     AND status IN ('activated', 'archived') AND NOT EXISTS \
                     (SELECT 1 FROM embeddings e WHERE e.memory_id = memories.id AND e.model = $3) \
                     ORDER BY seq"
                ),
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
                &format!(
                    "SELECT {CHANGE_COLUMNS} FROM history WHERE memory_id = $1 AND project_id = $2 ORDER BY seq"
                ),
                &[&memory_id, &project_id],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(change_from_row).collect()
    }

    async fn scan_messages(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Message>, Option<u64>)> {
        self.scan(
            &format!(
                "SELECT {MESSAGE_COLUMNS}, seq FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            after,
            limit,
            12,
            message_from_row,
        )
        .await
    }

    async fn scan_tasks(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Task>, Option<u64>)> {
        self.scan(
            &format!("SELECT {TASK_COLUMNS}, seq FROM tasks WHERE seq > $1 ORDER BY seq LIMIT $2"),
            after,
            limit,
            9,
            task_from_row,
        )
        .await
    }

    async fn scan_history(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<MemoryChange>, Option<u64>)> {
        self.scan(
            &format!(
                "SELECT {CHANGE_COLUMNS}, seq FROM history WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            after,
            limit,
            8,
            change_from_row,
        )
        .await
    }

    async fn scan_embeddings(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Embedding>, Option<u64>)> {
        self.scan(
            "SELECT memory_id, model, project_id, user_id, vector::text, seq FROM embeddings \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
            5,
            |r| {
                Ok(Embedding {
                    memory_id: r.get(0),
                    model: r.get(1),
                    scope: Scope::new(r.get::<_, String>(2), r.get::<_, String>(3)),
                    vector: vector_parse(r.get::<_, &str>(4)),
                })
            },
        )
        .await
    }

    async fn insert_key(&self, key: ApiKey) -> Result<()> {
        let c = self.client().await?;
        let res = c
            .execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[
                    &key.id,
                    &key.project_id,
                    &key.hash,
                    &key.prefix,
                    &key.label,
                    &key.create_time,
                    &key.revoked_time,
                ],
            )
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(super::duplicate_key())
            }
            Err(e) => Err(pg(e)),
        }
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        let c = self.client().await?;
        Ok(c.query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"),
            &[&hash],
        )
        .await
        .map_err(pg)?
        .as_ref()
        .map(key_from_row))
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let c = self.client().await?;
        Ok(c.query(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY create_time, seq"),
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(key_from_row)
        .collect())
    }

    fn searcher(self: Arc<Self>) -> Option<Arc<dyn StoreSearch>> {
        Some(self)
    }

    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_time = coalesce(revoked_time, $2) WHERE id = $1",
                &[&id, &at],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }
}

/// The parameters every search starts with (`$1` project, `$2` user, `$3` the query, `$4`
/// the limit) and its condition over `memories` as `m`: current at `time.to`, inside
/// `time`, passing `filter`.
fn search_conditions(
    scope: &Scope,
    query: Box<dyn ToSql + Sync + Send>,
    time: TimeRange,
    filter: Option<&Filter>,
    limit: usize,
) -> (String, Params) {
    let mut params: Params = vec![
        Box::new(scope.project_id.clone()),
        Box::new(scope.user_id.clone()),
        query,
        Box::new(limit as i64),
    ];
    let mut cond = current_sql(time, &mut params);
    if let Some(f) = filter {
        cond.push_str(" AND ");
        cond.push_str(&filter_sql(f, "m", &mut params));
    }
    (cond, params)
}

/// The SQL condition "current at `time.to`, inside `time`" over `memories` as `m`:
/// [`crate::search::current_at`] in SQL.
fn current_sql(time: TimeRange, params: &mut Params) -> String {
    let mut cond = match time.to {
        None => "m.status = 'activated'".to_string(),
        Some(t) => {
            params.push(Box::new(t));
            format!(
                "(m.status = 'activated' OR (m.status = 'archived' AND m.update_time > ${}))",
                params.len()
            )
        }
    };
    if let Some(lo) = time.from {
        params.push(Box::new(lo));
        cond.push_str(&format!(
            " AND coalesce(m.memory_time, m.create_time) >= ${}",
            params.len()
        ));
    }
    if let Some(hi) = time.to {
        params.push(Box::new(hi));
        cond.push_str(&format!(
            " AND coalesce(m.memory_time, m.create_time) <= ${}",
            params.len()
        ));
    }
    cond
}

/// The name of the HNSW index over one model's vectors.
fn vector_index_name(model: &str) -> String {
    // FNV-1a: stable across builds (every server must arrive at the same name), SQL-safe.
    let h = model.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("embeddings_hnsw_{h:016x}")
}

/// A string as an SQL literal (DDL takes no parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// BM25 constants, tantivy's, so both backends rank alike.
const K1: f64 = 1.2;
const B: f64 = 0.75;

#[async_trait]
impl StoreSearch for PostgresStore {
    async fn lexical(
        &self,
        scope: &Scope,
        terms: &[String],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        if terms.is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        let c = self.client().await?;
        let (cond, params) =
            search_conditions(scope, Box::new(terms.to_vec()), time, filter, limit);
        // idf and length normalisation as tantivy computes them (over every memory of the
        // database, as tantivy's statistics cover its whole index); a term's frequency in a
        // memory is the count of its positions in the term array.
        let sql = format!(
            "WITH s AS (SELECT greatest(max(value) FILTER (WHERE key = 'docs'), 1)::float8 AS n, \
                    greatest(max(value) FILTER (WHERE key = 'doc_terms'), 1)::float8 AS total \
                    FROM memos_meta WHERE key IN ('docs', 'doc_terms')), \
             q AS (SELECT t.term, ln(1 + (s.n - least(coalesce(d.df, 0), s.n) + 0.5) \
                    / (least(coalesce(d.df, 0), s.n) + 0.5)) AS idf \
                   FROM unnest($3::text[]) AS t(term) CROSS JOIN s \
                   LEFT JOIN memos_term_df d ON d.term = t.term), \
             c AS (SELECT m.id, m.terms, cardinality(m.terms) AS len FROM memories m \
                   WHERE m.project_id = $1 AND m.user_id = $2 AND m.terms && $3::text[] AND {cond}) \
             SELECT c.id, sum(q.idf * x.tf * {k1p1} / (x.tf + {K1} * ({omb} + {B} * c.len \
                    / (SELECT total / n FROM s))))::float4 AS score, \
                    (SELECT sum(idf) FROM q)::float4 \
             FROM c CROSS JOIN q \
             CROSS JOIN LATERAL (SELECT cardinality(array_positions(c.terms, q.term))::float8 AS tf) x \
             WHERE x.tf > 0 \
             GROUP BY c.id ORDER BY score DESC, c.id LIMIT $4",
            k1p1 = K1 + 1.0,
            omb = 1.0 - B,
        );
        let rows = c.query(&sql, &refs(&params)).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let (score, idf_sum): (f32, f32) = (r.get(1), r.get(2));
                Candidate {
                    id: r.get(0),
                    score,
                    relativity: if idf_sum > 0.0 {
                        (score / idf_sum).clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                }
            })
            .collect())
    }

    async fn prepare_vectors(&self, model: &str, dim: usize) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Concurrent starts of several servers take turns; the index is built once. The
        // build is many times faster when the graph fits in maintenance memory.
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(7235502); SET LOCAL maintenance_work_mem = '{mb}MB'; \
             SET LOCAL statement_timeout = 0; \
             CREATE INDEX IF NOT EXISTS {name} ON embeddings \
             USING hnsw ((vector::vector({dim})) vector_cosine_ops) WHERE model = {model}",
            name = vector_index_name(model),
            model = literal(model),
            mb = self.index_memory_mb,
        ))
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn dense(
        &self,
        scope: &Scope,
        model: &str,
        query: &[f32],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
    ) -> Result<Vec<(String, f32)>> {
        if limit == 0 || query.is_empty() {
            return Ok(vec![]);
        }
        let dim = query.len();
        let mut c = self.client().await?;
        let (cond, params) =
            search_conditions(scope, Box::new(vector_text(query)), time, filter, limit);
        // The model is a literal so the planner can match the partial HNSW index. The
        // index is shared by every user: iterative scans keep walking the graph until
        // enough of this user's memories pass the conditions; for a small user the planner
        // scans its rows exactly instead.
        let sql = format!(
            "SELECT e.memory_id, (1 - (e.vector::vector({dim}) <=> $3::text::vector({dim})))::float4 \
             FROM embeddings e JOIN memories m ON m.id = e.memory_id \
             WHERE e.model = {model} AND e.project_id = $1 AND e.user_id = $2 AND {cond} \
             ORDER BY e.vector::vector({dim}) <=> $3::text::vector({dim}) LIMIT $4",
            model = literal(model),
        );
        let tx = c.transaction().await.map_err(pg)?;
        tx.batch_execute(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 100",
        )
        .await
        .map_err(pg)?;
        let rows = tx.query(&sql, &refs(&params)).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let mut out: Vec<(String, f32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // relaxed_order may return a near neighbour slightly out of place.
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(out)
    }
}
