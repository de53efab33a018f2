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
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{ListQuery, MemoryStore, Page, Revision, WriteBatch};
use crate::error::{Error, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::model::*;

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
];

const MEMORY_COLUMNS: &str = "seq, id, project_id, user_id, conversation_id, memory_key, memory_value, memory_type, \
     memory_time, status, confidence, tags, info, agent_id, app_id, sources, create_time, update_time, reasoning";
const MESSAGE_COLUMNS: &str = "id, message_id, project_id, user_id, conversation_id, role, name, content, chat_time, create_time, task_id";
const TASK_COLUMNS: &str =
    "id, project_id, user_id, status, payload, memory_ids, error, create_time, update_time";
const KEY_COLUMNS: &str = "id, project_id, hash, prefix, label, create_time, revoked_time";

/// The PostgreSQL-backed store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
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
    Error::Unavailable(format!("stored {what} `{value}` is not understood"))
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
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("store.url: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| Error::Config(format!("store.url: {e}")))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Unavailable(format!("database: {e}")))
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

/// A filter as SQL over `memories`, appending its parameters.
fn filter_sql(f: &Filter, params: &mut Params) -> String {
    let next = |p: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(p);
        format!("${}", params.len())
    };
    let parts: Vec<String> = f
        .conditions
        .iter()
        .map(|c| match c {
            Condition::AgentId(a) => format!("agent_id = {}", next(Box::new(a.clone()), params)),
            Condition::AppId(a) => format!("app_id = {}", next(Box::new(a.clone()), params)),
            Condition::TagContains(t) => format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text(memories.tags) t WHERE lower(t) = {})",
                next(Box::new(t.clone()), params)
            ),
            Condition::MemoryType(t) => format!(
                "memory_type = {}",
                next(Box::new(t.as_str().to_string()), params)
            ),
            Condition::Time { field, min, max } => {
                let col = field.as_str();
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
                    "(CASE jsonb_typeof(info -> {k}) WHEN 'string' THEN info ->> {k} \
                     WHEN 'number' THEN (info -> {k})::text WHEN 'boolean' THEN (info -> {k})::text END) = {v}"
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        let rev = bump_revision(&tx).await?;
        if !batch.messages.is_empty() {
            let ins = tx
                .prepare(&format!(
                    "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .await
                .map_err(pg)?;
            for m in &batch.messages {
                tx.execute(
                    &ins,
                    &[
                        &m.id,
                        &m.message_id,
                        &m.scope.project_id,
                        &m.scope.user_id,
                        &m.conversation_id,
                        &m.role.as_str(),
                        &m.name,
                        &m.content,
                        &m.chat_time,
                        &m.create_time,
                        &m.task_id,
                    ],
                )
                .await
                .map_err(pg)?;
            }
        }
        if !batch.upsert_memories.is_empty() {
            // A vector describes a text: when the text changes, the vector goes.
            let stale = tx
                .prepare(
                    "DELETE FROM embeddings WHERE memory_id = $1 AND EXISTS \
                     (SELECT 1 FROM memories WHERE id = $1 AND memory_value <> $2)",
                )
                .await
                .map_err(pg)?;
            let up = tx
                .prepare(
                    "INSERT INTO memories (id, project_id, user_id, conversation_id, memory_key, memory_value, \
                     memory_type, memory_time, status, confidence, tags, info, agent_id, app_id, sources, \
                     create_time, update_time, reasoning) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                     ON CONFLICT (id) DO UPDATE SET conversation_id = excluded.conversation_id, \
                     memory_key = excluded.memory_key, memory_value = excluded.memory_value, \
                     memory_type = excluded.memory_type, memory_time = excluded.memory_time, \
                     status = excluded.status, confidence = excluded.confidence, tags = excluded.tags, \
                     info = excluded.info, agent_id = excluded.agent_id, app_id = excluded.app_id, \
                     sources = excluded.sources, update_time = excluded.update_time, \
                     reasoning = excluded.reasoning",
                )
                .await
                .map_err(pg)?;
            for m in &batch.upsert_memories {
                tx.execute(&stale, &[&m.id, &m.value]).await.map_err(pg)?;
                tx.execute(
                    &up,
                    &[
                        &m.id,
                        &m.scope.project_id,
                        &m.scope.user_id,
                        &m.conversation_id,
                        &m.key,
                        &m.value,
                        &m.memory_type.as_str(),
                        &m.memory_time,
                        &m.status.as_str(),
                        &m.confidence,
                        &json(&m.tags),
                        &Value::Object(m.info.clone()),
                        &m.agent_id,
                        &m.app_id,
                        &json(&m.sources),
                        &m.create_time,
                        &m.update_time,
                        &m.reasoning,
                    ],
                )
                .await
                .map_err(pg)?;
            }
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
        for e in &batch.embeddings {
            tx.execute(
                "INSERT INTO embeddings (memory_id, model, project_id, user_id, vector) \
                 VALUES ($1, $2, $3, $4, $5::text::vector) \
                 ON CONFLICT (memory_id, model) DO UPDATE SET vector = excluded.vector",
                &[
                    &e.memory_id,
                    &e.model,
                    &e.scope.project_id,
                    &e.scope.user_id,
                    &vector_text(&e.vector),
                ],
            )
            .await
            .map_err(pg)?;
        }
        for h in &batch.history {
            tx.execute(
                "INSERT INTO history (memory_id, project_id, user_id, time, kind, related_id, before, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &h.memory_id,
                    &h.scope.project_id,
                    &h.scope.user_id,
                    &h.time,
                    &h.kind.as_str(),
                    &h.related_id,
                    &h.before,
                    &h.note,
                ],
            )
            .await
            .map_err(pg)?;
        }
        if let Some(t) = &batch.task {
            tx.execute(
                &format!(
                    "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
                     memory_ids = excluded.memory_ids, error = excluded.error, update_time = excluded.update_time"
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
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(rev as Revision)
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
            cond.push_str(&filter_sql(f, &mut params));
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

    async fn running_tasks(&self) -> Result<Vec<Task>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'running' ORDER BY create_time, seq"
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(task_from_row).collect()
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
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&(after.map_or(0, |a| a as i64)), &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        let page: Vec<(u64, Memory)> = rows.iter().map(memory_from_row).collect::<Result<_>>()?;
        let cursor = page.last().map(|(s, _)| *s);
        Ok((page.into_iter().map(|(_, m)| m).collect(), cursor))
    }

    async fn embeddings(
        &self,
        scope: &Scope,
        model: &str,
    ) -> Result<Vec<(String, Millis, Vec<f32>)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT e.memory_id, coalesce(m.memory_time, m.create_time), e.vector::text FROM embeddings e \
                 JOIN memories m ON m.id = e.memory_id \
                 WHERE e.project_id = $1 AND e.user_id = $2 AND e.model = $3 AND m.status = 'activated'",
                &[&scope.project_id, &scope.user_id, &model],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), vector_parse(r.get::<_, &str>(2))))
            .collect())
    }

    async fn missing_embeddings(&self, model: &str, limit: usize) -> Result<Vec<Memory>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE status = 'activated' AND NOT EXISTS \
                     (SELECT 1 FROM embeddings e WHERE e.memory_id = memories.id AND e.model = $1) \
                     ORDER BY seq LIMIT $2"
                ),
                &[&model, &(limit as i64)],
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
                "SELECT memory_id, project_id, user_id, time, kind, related_id, before, note \
                 FROM history WHERE memory_id = $1 AND project_id = $2 ORDER BY seq",
                &[&memory_id, &project_id],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
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
            })
            .collect()
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
