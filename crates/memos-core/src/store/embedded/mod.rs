//! [`EmbeddedStore`]: the default backend, one SQLite database in WAL mode.
//!
//! One writer connection serialises writes (SQLite allows one writer anyway); a few reader
//! connections serve reads concurrently thanks to WAL. `synchronous = FULL` makes every
//! acknowledged write survive a crash of the process and of the machine. All calls run on
//! tokio's blocking pool so a slow fsync never stalls the async executor. Columns, row
//! mapping and filters as SQL are shared with PostgreSQL ([`super::sql`]); the schema is
//! `migrations/*.sql`, numbered, its version kept in `meta.schema_version`.

mod backup;
mod records;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use serde_json::Value;

use super::sql::{
    self, CHANGE_COLUMNS, Dialect, MEMORY_COLUMNS, MESSAGE_COLUMNS, Param, SqlRow, TASK_COLUMNS,
    filter_sql,
};
use super::{Lease, ListQuery, MemoryStore, Page, Revision, StoredVector, WriteBatch};
use crate::error::{Error, Result};
use crate::model::*;

const READERS: usize = 4;

/// The schema as the first release wrote it (version 1); [`MIGRATIONS`] bring it up to
/// date, so a new file and an old one take the same path.
const SCHEMA: &str = include_str!("migrations/0001_schema.sql");

/// Schema changes since version 1, in order: migration `i` brings the file to version
/// `i + 2`, recorded in `meta.schema_version`. Each adds a column; files that an earlier
/// memos upgraded by probing for columns may hold it already, so a present column counts
/// as applied.
const MIGRATIONS: &[Migration] = &[
    // 2: the LLM's reasoning behind an inferred memory.
    Migration {
        table: "memories",
        column: "reasoning",
        sql: include_str!("migrations/0002_memory_reasoning.sql"),
    },
    // 3: task leases, so a restarted or second server takes over a stopped one's tasks.
    Migration {
        table: "tasks",
        column: "owner",
        sql: include_str!("migrations/0003_task_leases.sql"),
    },
    // 4: what a message held beyond text: tool calls, a tool_call_id, content parts.
    Migration {
        table: "messages",
        column: "raw",
        sql: include_str!("migrations/0004_message_raw.sql"),
    },
    // 5: small JSON documents: profile templates and profile instances.
    Migration {
        table: "docs",
        column: "id",
        sql: include_str!("migrations/0005_docs.sql"),
    },
];

/// One numbered schema change.
struct Migration {
    table: &'static str,
    column: &'static str,
    sql: &'static str,
}

/// The schema version this memos writes.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64 + 1;

/// Brings a file to [`SCHEMA_VERSION`], under SQLite's write lock so a server and a CLI
/// opening it at once do not both migrate. A file from a newer memos is refused.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let version: i64 = tx.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version > SCHEMA_VERSION {
        return Err(Error::Config(format!(
            "the data directory was written by a newer memos (schema {version}); this one \
             reads up to schema {SCHEMA_VERSION}"
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let to = i as i64 + 2;
        if to <= version {
            continue;
        }
        let present: bool = tx.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![m.table, m.column],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !present {
            tx.execute_batch(m.sql)?;
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            params![to],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The SQLite-backed store.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file `memos.db` inside `dir`, for the one
    /// process that serves it: leases of an earlier process are voided.
    pub fn open(dir: &Path) -> Result<Self> {
        let store = Self::open_shared(dir)?;
        // One process serves a data directory (the index's writer lock sees to that), so
        // leases of an earlier process are void: its tasks are claimable at once.
        store
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .execute_batch("UPDATE tasks SET lease_until = NULL WHERE status = 'running'")?;
        Ok(store)
    }

    /// Opens the store beside a server that may be running on it (SQLite in WAL mode takes
    /// both), touching none of the server's state: for administration, such as revoking a
    /// key, which takes effect at the server's next request.
    pub fn open_shared(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Config(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("memos.db");
        let mut writer = open_connection(&path)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path).map(Mutex::new))
            .collect::<Result<_>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// One page of a `WHERE <cursor> > ? ORDER BY <cursor> LIMIT ?` query whose rows map
    /// to (cursor, item).
    async fn scan<T: Send + 'static>(
        &self,
        sql: String,
        after: Option<u64>,
        limit: usize,
        row: fn(&Row<'_>) -> rusqlite::Result<(u64, T)>,
    ) -> Result<(Vec<T>, Option<u64>)> {
        self.scan_with(sql, after, limit, Vec::new(), row).await
    }

    /// [`Self::scan`] with more parameters, bound after the cursor and the limit (`?3`...).
    async fn scan_with<T: Send + 'static>(
        &self,
        sql: String,
        after: Option<u64>,
        limit: usize,
        extra: Vec<SqlValue>,
        row: fn(&Row<'_>) -> rusqlite::Result<(u64, T)>,
    ) -> Result<(Vec<T>, Option<u64>)> {
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut bound: Vec<SqlValue> =
                vec![after.map_or(-1, |a| a as i64).into(), (limit as i64).into()];
            bound.extend(extra);
            let rows = stmt
                .query_map(params_from_iter(bound.iter()), row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let cursor = rows.last().map(|(s, _)| *s);
            Ok((rows.into_iter().map(|(_, t)| t).collect(), cursor))
        })
        .await
    }

    /// Runs `f` on the writer connection, off the async executor.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` on one of the reader connections, off the async executor.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(format!("storage worker failed: {e}")))?
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain types serialise")
}

/// A SQLite row as the shared mappers read it.
struct SqliteRow<'a, 'r>(&'a Row<'r>);

impl SqlRow for SqliteRow<'_, '_> {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.0.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.0.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.0.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.0.get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.0.get(i)?)
    }
    fn json(&self, i: usize) -> Result<Option<Value>> {
        self.0
            .get::<_, Option<String>>(i)?
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| Error::Corrupt(format!("stored JSON in column {i}: {e}")))
            })
            .transpose()
    }
}

/// Our error as rusqlite's, for the shared mappers run inside rusqlite's row callbacks;
/// [`Error`]'s conversion from rusqlite's unwraps it again, so corrupt data stays corrupt.
fn carry(e: Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
}

fn memory_from_row(r: &Row<'_>) -> rusqlite::Result<(u64, Memory)> {
    sql::memory(&SqliteRow(r)).map_err(carry)
}

fn change_from_row(r: &Row<'_>) -> rusqlite::Result<MemoryChange> {
    sql::change(&SqliteRow(r)).map_err(carry)
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    sql::message(&SqliteRow(r)).map_err(carry)
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    sql::task(&SqliteRow(r)).map_err(carry)
}

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    sql::key(&SqliteRow(r)).map_err(carry)
}

/// Vectors are stored as little-endian f32s: compact, and readable by any language.
fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn sqlite_param(p: Param) -> SqlValue {
    match p {
        Param::Text(s) => s.into(),
        Param::Int(i) => i.into(),
    }
}

fn bump_revision(tx: &rusqlite::Transaction<'_>) -> Result<Revision> {
    let rev: i64 = tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
        [],
        |r| r.get(0),
    )?;
    Ok(rev as Revision)
}

#[async_trait]
impl MemoryStore for EmbeddedStore {
    async fn write(&self, batch: WriteBatch) -> Result<Revision> {
        self.write_batch(batch).await
    }

    async fn revision(&self) -> Result<Revision> {
        self.with_reader(|c| {
            Ok(
                c.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                    r.get::<_, i64>(0)
                })? as Revision,
            )
        })
        .await
    }

    async fn get_memories(&self, project_id: &str, ids: &[String]) -> Result<Vec<Memory>> {
        // Nothing to read (a search whose preference channel found none, every search
        // without preferences): no thread hand-off or round trip.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (project_id, ids) = (project_id.to_string(), ids.to_vec());
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ? AND project_id = ?"
            ))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some((_, m)) = stmt
                    .query_row(params![id, project_id], memory_from_row)
                    .optional()?
                {
                    out.push(m);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_memories(&self, scope: &Scope, q: &ListQuery) -> Result<Page<Memory>> {
        let (scope, q) = (scope.clone(), q.clone());
        self.with_reader(move |c| {
            let mut params: Vec<SqlValue> = vec![scope.project_id.into(), scope.user_id.into()];
            let mut cond = "project_id = ? AND user_id = ? AND ".to_string();
            cond.push_str(&super::sql::status_sql(q.statuses.as_deref()));
            if let Some(conv) = q.conversation_id {
                cond.push_str(" AND conversation_id = ?");
                params.push(conv.into());
            }
            if let Some(t) = q.exclude_type {
                cond.push_str(" AND memory_type != ?");
                params.push(t.as_str().to_string().into());
            }
            if let Some(f) = &q.filter {
                cond.push_str(" AND ");
                let mut fp = Vec::new();
                cond.push_str(&filter_sql(f, Dialect::Sqlite, "memories", params.len(), &mut fp));
                params.extend(fp.into_iter().map(sqlite_param));
            }
            let total: i64 = c.query_row(
                &format!("SELECT count(*) FROM memories WHERE {cond}"),
                params_from_iter(params.iter()),
                |r| r.get(0),
            )?;
            params.push((q.limit as i64).into());
            params.push((q.offset as i64).into());
            let mut stmt = c.prepare(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE {cond} ORDER BY create_time DESC, seq DESC LIMIT ? OFFSET ?"
            ))?;
            let items = stmt
                .query_map(params_from_iter(params.iter()), memory_from_row)?
                .map(|r| r.map(|(_, m)| m))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { items, total: total as usize })
        })
        .await
    }

    async fn list_users(
        &self,
        project_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Page<UserSummary>> {
        let project_id = project_id.to_string();
        self.with_reader(move |c| {
            let total: i64 = c.query_row(
                "SELECT count(DISTINCT user_id) FROM memories WHERE project_id = ? AND status != 'deleted'",
                [&project_id],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare_cached(
                "SELECT user_id, count(*), max(update_time) AS last FROM memories \
                 WHERE project_id = ? AND status != 'deleted' GROUP BY user_id \
                 ORDER BY last DESC, user_id LIMIT ? OFFSET ?",
            )?;
            let items = stmt
                .query_map(params![project_id, limit as i64, offset as i64], |r| {
                    Ok(UserSummary {
                        user_id: r.get(0)?,
                        memories: r.get::<_, i64>(1)? as usize,
                        last_update: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page {
                items,
                total: total as usize,
            })
        })
        .await
    }

    async fn list_conversations(
        &self,
        scope: &Scope,
        limit: usize,
        offset: usize,
    ) -> Result<Page<ConversationSummary>> {
        let scope = scope.clone();
        self.with_reader(move |c| {
            let total: i64 = c.query_row(
                "SELECT count(DISTINCT conversation_id) FROM messages WHERE project_id = ? AND user_id = ?",
                params![scope.project_id, scope.user_id],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare_cached(super::sql::CONVERSATIONS)?;
            let items = stmt
                .query_map(
                    params![scope.project_id, scope.user_id, limit as i64, offset as i64],
                    |r| {
                        Ok(ConversationSummary {
                            conversation_id: r.get(0)?,
                            messages: r.get::<_, i64>(1)?.max(0) as usize,
                            first_chat_time: r.get(2)?,
                            last_chat_time: r.get(3)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { items, total: total.max(0) as usize })
        })
        .await
    }

    async fn list_messages(
        &self,
        scope: &Scope,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let (scope, conv) = (scope.clone(), conversation_id.to_string());
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE project_id = ? AND user_id = ? AND conversation_id = ? \
                 ORDER BY chat_time DESC, seq DESC LIMIT ?"
            ))?;
            let mut msgs = stmt
                .query_map(params![scope.project_id, scope.user_id, conv, limit as i64], message_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            msgs.reverse();
            Ok(msgs)
        })
        .await
    }

    async fn task_messages(&self, task_id: &str) -> Result<Vec<Message>> {
        let task_id = task_id.to_string();
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE task_id = ? ORDER BY seq"
            ))?;
            Ok(stmt
                .query_map([task_id], message_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_task(&self, project_id: &str, task_id: &str) -> Result<Option<Task>> {
        let (project_id, task_id) = (project_id.to_string(), task_id.to_string());
        self.with_reader(move |c| {
            Ok(c.query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND project_id = ?"),
                params![task_id, project_id],
                task_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        let rows = self
            .with_reader(|c| {
                let mut stmt = c.prepare_cached(sql::TASK_COUNTS)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        sql::task_counts(rows)
    }

    async fn claim_tasks(&self, lease: &Lease, now: Millis, limit: usize) -> Result<Vec<Task>> {
        let lease = lease.clone();
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            let tasks = {
                let mut stmt = tx.prepare(&format!(
                    "UPDATE tasks SET owner = ?1, lease_until = ?2 WHERE id IN \
                     (SELECT id FROM tasks WHERE status = 'running' AND coalesce(lease_until, 0) < ?3 \
                      ORDER BY create_time, rowid LIMIT ?4) RETURNING {TASK_COLUMNS}"
                ))?;
                stmt.query_map(
                    params![lease.owner, lease.until, now, limit as i64],
                    task_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            let mut tasks = tasks;
            tasks.sort_by_key(|t| t.create_time);
            Ok(tasks)
        })
        .await
    }

    async fn renew_task(&self, task_id: &str, lease: &Lease) -> Result<bool> {
        let (id, lease) = (task_id.to_string(), lease.clone());
        self.with_writer(move |conn| {
            Ok(conn.execute(
                "UPDATE tasks SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'running'",
                params![lease.until, id, lease.owner],
            )? > 0)
        })
        .await
    }

    async fn delete_user(&self, scope: &Scope) -> Result<(usize, Revision)> {
        let scope = scope.clone();
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            let p = params![scope.project_id, scope.user_id];
            // Counted as the client saw them: soft-deleted ones were already gone.
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM memories WHERE project_id = ? AND user_id = ? AND status != 'deleted'",
                p,
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM memories WHERE project_id = ? AND user_id = ?",
                p,
            )?;
            tx.execute(
                "DELETE FROM messages WHERE project_id = ? AND user_id = ?",
                p,
            )?;
            tx.execute("DELETE FROM tasks WHERE project_id = ? AND user_id = ?", p)?;
            tx.execute(
                "DELETE FROM embeddings WHERE project_id = ? AND user_id = ?",
                p,
            )?;
            tx.execute(
                "DELETE FROM history WHERE project_id = ? AND user_id = ?",
                p,
            )?;
            tx.execute("DELETE FROM docs WHERE project_id = ? AND user_id = ?", p)?;
            let rev = bump_revision(&tx)?;
            tx.commit()?;
            Ok((n as usize, rev))
        })
        .await
    }

    async fn user_exists(&self, scope: &Scope) -> Result<bool> {
        let scope = scope.clone();
        self.with_reader(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM memories WHERE project_id = ?1 AND user_id = ?2) \
                 OR EXISTS (SELECT 1 FROM messages WHERE project_id = ?1 AND user_id = ?2) \
                 OR EXISTS (SELECT 1 FROM docs WHERE project_id = ?1 AND user_id = ?2)",
                params![scope.project_id, scope.user_id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn embeddings(&self, scope: &Scope, model: &str) -> Result<Vec<StoredVector>> {
        let (scope, model) = (scope.clone(), model.to_string());
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.memory_id, coalesce(m.memory_time, m.create_time), e.vector, \
                 CASE WHEN m.status = 'archived' THEN m.update_time END FROM embeddings e \
                 JOIN memories m ON m.id = e.memory_id \
                 WHERE e.project_id = ? AND e.user_id = ? AND e.model = ? \
                 AND m.status IN ('activated', 'archived')",
            )?;
            let rows = stmt
                .query_map(params![scope.project_id, scope.user_id, model], |r| {
                    Ok(StoredVector {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        vector: vector_from_bytes(&r.get::<_, Vec<u8>>(2)?),
                        archived_at: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn missing_embeddings(
        &self,
        model: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        self.scan_with(
            format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE seq > ?1 AND status IN ('activated', 'archived') AND NOT EXISTS \
                 (SELECT 1 FROM embeddings e WHERE e.memory_id = memories.id AND e.model = ?3) \
                 ORDER BY seq LIMIT ?2"
            ),
            after,
            limit,
            vec![model.to_string().into()],
            memory_from_row,
        )
        .await
    }

    async fn lacking_embeddings(
        &self,
        project_id: &str,
        ids: &[String],
        model: &str,
    ) -> Result<Vec<Memory>> {
        let (project_id, ids, model) = (project_id.to_string(), ids.to_vec(), model.to_string());
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?1 AND project_id = ?2 \
                 AND status IN ('activated', 'archived') AND NOT EXISTS \
                 (SELECT 1 FROM embeddings e WHERE e.memory_id = ?1 AND e.model = ?3)"
            ))?;
            let mut out = Vec::new();
            for id in &ids {
                if let Some((_, m)) = stmt
                    .query_row(params![id, project_id, model], memory_from_row)
                    .optional()?
                {
                    out.push(m);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn history(&self, project_id: &str, memory_id: &str) -> Result<Vec<MemoryChange>> {
        let (project_id, memory_id) = (project_id.to_string(), memory_id.to_string());
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM history WHERE memory_id = ? AND project_id = ? ORDER BY seq"
            ))?;
            let rows = stmt
                .query_map(params![memory_id, project_id], change_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
