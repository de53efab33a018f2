//! The write path of [`EmbeddedStore`]: one [`WriteBatch`] as one SQLite transaction on
//! the writer connection, the revision bumped inside it.

use rusqlite::params;

use super::sql::{MESSAGE_COLUMNS, TASK_COLUMNS};
use super::{EmbeddedStore, bump_revision, json, vector_bytes};
use crate::error::Result;
use crate::model::TaskStatus;
use crate::store::{Expect, Revision, WriteBatch};

impl EmbeddedStore {
    /// [`MemoryStore::write`]: one transaction on the writer connection.
    pub(super) async fn write_batch(&self, batch: WriteBatch) -> Result<Revision> {
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            check_expect(&tx, &batch.expect)?;
            {
                let mut ins = tx.prepare_cached(&format!(
                    "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ))?;
                for m in &batch.messages {
                    ins.execute(params![
                        m.id,
                        m.message_id,
                        m.scope.project_id,
                        m.scope.user_id,
                        m.conversation_id,
                        m.role.as_str(),
                        m.name,
                        m.content,
                        m.chat_time,
                        m.create_time,
                        m.task_id,
                        m.raw.as_ref().map(serde_json::Value::to_string)
                    ])?;
                }
                let mut up = tx.prepare_cached(
                    "INSERT INTO memories (id, project_id, user_id, conversation_id, memory_key, memory_value, \
                     memory_type, memory_time, status, confidence, tags, info, agent_id, app_id, sources, \
                     create_time, update_time, reasoning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET conversation_id = excluded.conversation_id, \
                     memory_key = excluded.memory_key, memory_value = excluded.memory_value, \
                     memory_type = excluded.memory_type, memory_time = excluded.memory_time, \
                     status = excluded.status, confidence = excluded.confidence, tags = excluded.tags, \
                     info = excluded.info, agent_id = excluded.agent_id, app_id = excluded.app_id, \
                     sources = excluded.sources, update_time = excluded.update_time, \
                     reasoning = excluded.reasoning",
                )?;
                // A vector describes a text: when the text changes, the vector goes (the
                // background embedder makes a new one).
                let mut stale = tx.prepare_cached(
                    "DELETE FROM embeddings WHERE memory_id = ?1 AND EXISTS \
                     (SELECT 1 FROM memories WHERE id = ?1 AND memory_value != ?2)",
                )?;
                for m in &batch.upsert_memories {
                    stale.execute(params![m.id, m.value])?;
                    up.execute(params![
                        m.id,
                        m.scope.project_id,
                        m.scope.user_id,
                        m.conversation_id,
                        m.key,
                        m.value,
                        m.memory_type.as_str(),
                        m.memory_time,
                        m.status.as_str(),
                        m.confidence as f64,
                        json(&m.tags),
                        json(&m.info),
                        m.agent_id,
                        m.app_id,
                        json(&m.sources),
                        m.create_time,
                        m.update_time,
                        m.reasoning
                    ])?;
                }
                let mut del = tx.prepare_cached("DELETE FROM memories WHERE id = ?")?;
                let mut del_vec = tx.prepare_cached("DELETE FROM embeddings WHERE memory_id = ?")?;
                let mut del_hist = tx.prepare_cached("DELETE FROM history WHERE memory_id = ?")?;
                for id in &batch.delete_memories {
                    del.execute([id])?;
                    del_vec.execute([id])?;
                    del_hist.execute([id])?;
                }
                let mut hist = tx.prepare_cached(
                    "INSERT INTO history (memory_id, project_id, user_id, time, kind, related_id, before, note) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )?;
                for h in &batch.history {
                    hist.execute(params![
                        h.memory_id,
                        h.scope.project_id,
                        h.scope.user_id,
                        h.time,
                        h.kind.as_str(),
                        h.related_id,
                        h.before,
                        h.note
                    ])?;
                }
                let mut vec = tx.prepare_cached(
                    "INSERT OR REPLACE INTO embeddings (memory_id, model, project_id, user_id, vector) VALUES (?, ?, ?, ?, ?)",
                )?;
                for e in &batch.embeddings {
                    vec.execute(params![e.memory_id, e.model, e.scope.project_id, e.scope.user_id, vector_bytes(&e.vector)])?;
                }
                if let Some(t) = &batch.task {
                    let (owner, until, hold) = batch.task_lease_sql();
                    let n = tx.execute(
                        &format!(
                            "INSERT INTO tasks ({TASK_COLUMNS}, owner, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                             ON CONFLICT (id) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
                             memory_ids = excluded.memory_ids, error = excluded.error, \
                             update_time = excluded.update_time{hold}"
                        ),
                        params![
                            t.id,
                            t.scope.project_id,
                            t.scope.user_id,
                            t.status.as_str(),
                            json(&t.payload),
                            json(&t.memory_ids),
                            t.error,
                            t.create_time,
                            t.update_time,
                            owner,
                            until
                        ],
                    )?;
                    if n == 0 {
                        return Err(crate::store::lease_lost(&t.id));
                    }
                }
            }
            let rev = bump_revision(&tx)?;
            tx.commit()?;
            Ok(rev)
        })
        .await
    }
}

/// Fails unless what the batch expects still holds. SQLite has one writer, so nothing can
/// change between this check and the batch's own statements in the same transaction.
fn check_expect(tx: &rusqlite::Transaction<'_>, expect: &Expect) -> Result<()> {
    let mut memory = tx.prepare_cached(
        "SELECT 1 FROM memories WHERE id = ?1 AND project_id = ?2 AND update_time = ?3 AND status = ?4",
    )?;
    for (id, time, status) in &expect.memories {
        if !memory.exists(params![id, expect.project, time, status.as_str()])? {
            return Err(Expect::changed(id));
        }
    }
    if let Some(task) = &expect.task {
        let running = tx
            .prepare_cached(
                "SELECT 1 FROM tasks WHERE id = ?1 AND project_id = ?2 AND status = ?3",
            )?
            .exists(params![task, expect.project, TaskStatus::Running.as_str()])?;
        if !running {
            return Err(Expect::task_gone(task));
        }
    }
    let mut taken = tx.prepare_cached(
        "SELECT 1 FROM memories WHERE id = ?1 UNION ALL SELECT 1 FROM messages WHERE id = ?1",
    )?;
    for id in &expect.absent {
        if taken.exists(params![id])? {
            return Err(Expect::taken(id));
        }
    }
    Ok(())
}
