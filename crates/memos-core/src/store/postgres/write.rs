//! The write path of [`PostgresStore`]: one [`WriteBatch`] as one transaction, the
//! revision row taken first so concurrent writers, on one server or many, apply in order.

use std::collections::HashMap;

use serde_json::Value;

use super::sql::{MESSAGE_COLUMNS, TASK_COLUMNS};
use super::{PostgresStore, Prepared, bump_revision, json, last_of, pg, vector_text};
use crate::error::Result;
use crate::model::{Millis, TaskStatus};
use crate::store::{Expect, Revision, WriteBatch};

impl PostgresStore {
    /// One attempt at [`MemoryStore::write`]: one transaction.
    pub(super) async fn write_once(&self, batch: &WriteBatch) -> Result<Revision> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // The revision row is locked first: every writer, on every server, waits here for
        // the one before it to commit, so the check below sees any erase or edit that
        // committed before this batch and none can land between the check and the writes.
        let rev = bump_revision(&tx).await?;
        if rev % PRUNE_CHANGES_EVERY == 0 {
            prune_changes(&tx, rev).await?;
        }
        check_expect(&tx, &batch.expect).await?;
        // Each kind of row goes in as one statement over arrays (`unnest`), whatever the
        // batch size: one round trip instead of one per row.
        if !batch.messages.is_empty() {
            let ms = &batch.messages;
            tx.execute(
                &tx.prepared(&format!(
                    "INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], \
                     $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], \
                     $10::bigint[], $11::text[], $12::jsonb[])"
                )).await?,
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
                &tx.prepared("DELETE FROM embeddings e USING memories m, unnest($1::text[], $2::text[]) AS x(id, value) \
                 WHERE m.id = x.id AND m.memory_value <> x.value AND e.memory_id = x.id").await?,
                &[&ids, &values],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                &tx.prepared("INSERT INTO memories (id, project_id, user_id, conversation_id, memory_key, memory_value, \
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
                 reasoning = excluded.reasoning, terms = excluded.terms").await?,
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
                    &tx.prepared(&format!("DELETE FROM {table} = ANY($1)"))
                        .await?,
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
                &tx.prepared(
                    "INSERT INTO embeddings (memory_id, model, project_id, user_id, vector) \
                 SELECT memory_id, model, project_id, user_id, vector::vector \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 AS x(memory_id, model, project_id, user_id, vector) \
                 ON CONFLICT (memory_id, model) DO UPDATE SET vector = excluded.vector",
                )
                .await?,
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
                &tx.prepared("INSERT INTO history (memory_id, project_id, user_id, time, kind, related_id, before, note) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                 $6::text[], $7::text[], $8::text[])").await?,
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
                &tx.prepared(&format!(
                    "INSERT INTO tasks ({TASK_COLUMNS}, owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, payload = excluded.payload, \
                     memory_ids = excluded.memory_ids, error = excluded.error, update_time = excluded.update_time{hold}"
                )).await?,
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
                return Err(crate::store::lease_lost(&t.id));
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(rev as Revision)
    }
}

/// Every how many revisions a write prunes the change log.
const PRUNE_CHANGES_EVERY: i64 = 1_000;
/// Revisions of the change log kept: a server's copy of a user that has not caught up for
/// longer than this loads again whole (at ten writes a second, after 17 minutes).
const CHANGES_KEPT: i64 = 10_000;

/// Drops change-log entries older than [`CHANGES_KEPT`] revisions and moves the floor
/// below which a copy must load again, in the write's transaction.
async fn prune_changes(tx: &deadpool_postgres::Transaction<'_>, rev: i64) -> Result<()> {
    let floor = rev - CHANGES_KEPT;
    if floor <= 0 {
        return Ok(());
    }
    tx.execute(
        &tx.prepared(
            "WITH gone AS (DELETE FROM memos_changes WHERE revision <= $1) \
         UPDATE memos_meta SET value = greatest(value, $1) WHERE key = 'changes_floor'",
        )
        .await?,
        &[&floor],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Fails unless what the batch expects still holds, in the batch's transaction after the
/// revision lock.
async fn check_expect(tx: &deadpool_postgres::Transaction<'_>, expect: &Expect) -> Result<()> {
    if !expect.memories.is_empty() {
        let ids: Vec<&str> = expect.memories.iter().map(|(id, ..)| id.as_str()).collect();
        let rows = tx
            .query(
                &tx.prepared("SELECT id, update_time, status FROM memories WHERE project_id = $1 AND id = ANY($2)").await?,
                &[&expect.project, &ids],
            )
            .await
            .map_err(pg)?;
        let now: HashMap<String, (Millis, String)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        for (id, time, status) in &expect.memories {
            if !now
                .get(id)
                .is_some_and(|(t, s)| t == time && s == status.as_str())
            {
                return Err(Expect::changed(id));
            }
        }
    }
    if let Some(task) = &expect.task {
        let running = tx
            .query_opt(
                &tx.prepared(
                    "SELECT 1 FROM tasks WHERE id = $1 AND project_id = $2 AND status = $3",
                )
                .await?,
                &[task, &expect.project, &TaskStatus::Running.as_str()],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !running {
            return Err(Expect::task_gone(task));
        }
    }
    if !expect.absent.is_empty() {
        let taken = tx
            .query_opt(
                &tx.prepared(
                    "SELECT id FROM memories WHERE id = ANY($1) \
                 UNION ALL SELECT id FROM messages WHERE id = ANY($1) LIMIT 1",
                )
                .await?,
                &[&expect.absent],
            )
            .await
            .map_err(pg)?;
        if let Some(row) = taken {
            return Err(Expect::taken(row.get(0)));
        }
    }
    Ok(())
}
