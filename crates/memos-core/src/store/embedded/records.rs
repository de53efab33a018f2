//! What the embedded store keeps beside memories: API keys ([`KeyStore`]), JSON documents
//! ([`DocStore`]) and the write-order pages `memos migrate` copies ([`StoreScan`]).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{
    EmbeddedStore, SqliteRow, carry, change_from_row, key_from_row, memory_from_row,
    message_from_row, task_from_row, vector_from_bytes,
};
use crate::error::Result;
use crate::model::*;
use crate::store::sql::{
    self, CHANGE_COLUMNS, DOC_COLUMNS, Dialect, KEY_COLUMNS, MEMORY_COLUMNS, MESSAGE_COLUMNS,
    TASK_COLUMNS,
};
use crate::store::{DocStore, Embedding, KeyStore, StoreScan};

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn insert_key(&self, key: ApiKey) -> Result<()> {
        self.with_writer(move |c| {
            let res = c.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                params![
                    key.id,
                    key.project_id,
                    key.hash,
                    key.prefix,
                    key.label,
                    key.create_time,
                    key.revoked_time
                ],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(crate::store::duplicate_key())
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        let hash = hash.to_string();
        self.with_reader(move |c| {
            Ok(c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = ?"),
                [hash],
                key_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY create_time, rowid"
            ))?;
            Ok(stmt
                .query_map([], key_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool> {
        let id = id.to_string();
        self.with_writer(move |c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_time = coalesce(revoked_time, ?) WHERE id = ?",
                params![at, id],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl DocStore for EmbeddedStore {
    async fn put_docs(&self, docs: Vec<Doc>) -> Result<()> {
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            for d in &docs {
                tx.execute(
                    &format!(
                        "INSERT INTO docs ({DOC_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, project_id, user_id, id) \
                     DO UPDATE SET body = excluded.body, update_time = excluded.update_time"
                    ),
                    params![
                        d.kind,
                        d.project_id,
                        d.user_id,
                        d.id,
                        d.body.to_string(),
                        d.create_time,
                        d.update_time
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_docs(&self, select: DocSelect<'_>) -> Result<Vec<Doc>> {
        let (sql, bound) = sql::docs_where(&select, Dialect::Sqlite);
        self.with_reader(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DOC_COLUMNS} FROM docs WHERE {sql} ORDER BY kind, project_id, user_id, id"
            ))?;
            let docs = stmt
                .query_map(params_from_iter(bound.iter()), |r| {
                    sql::doc(&SqliteRow(r)).map_err(carry)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(docs)
        })
        .await
    }

    async fn delete_docs(
        &self,
        project_id: &str,
        kind: &str,
        user_id: Option<&str>,
        id: Option<&str>,
    ) -> Result<usize> {
        let (sql, bound) = sql::docs_where(
            &DocSelect {
                kind: Some(kind),
                project_id: Some(project_id),
                user_id,
                id,
            },
            Dialect::Sqlite,
        );
        self.with_writer(move |conn| {
            Ok(conn.execute(
                &format!("DELETE FROM docs WHERE {sql}"),
                params_from_iter(bound.iter()),
            )?)
        })
        .await
    }
}

#[async_trait]
impl StoreScan for EmbeddedStore {
    async fn scan_memories(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        self.scan(
            format!("SELECT {MEMORY_COLUMNS} FROM memories WHERE seq > ? ORDER BY seq LIMIT ?"),
            after,
            limit,
            memory_from_row,
        )
        .await
    }

    async fn scan_messages(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Message>, Option<u64>)> {
        self.scan(
            format!(
                "SELECT {MESSAGE_COLUMNS}, seq FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"
            ),
            after,
            limit,
            |r| Ok((r.get::<_, i64>(12)? as u64, message_from_row(r)?)),
        )
        .await
    }

    async fn scan_tasks(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Task>, Option<u64>)> {
        self.scan(
            format!(
                "SELECT {TASK_COLUMNS}, rowid FROM tasks WHERE rowid > ? ORDER BY rowid LIMIT ?"
            ),
            after,
            limit,
            |r| Ok((r.get::<_, i64>(9)? as u64, task_from_row(r)?)),
        )
        .await
    }

    async fn scan_history(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<MemoryChange>, Option<u64>)> {
        self.scan(
            format!("SELECT {CHANGE_COLUMNS}, seq FROM history WHERE seq > ? ORDER BY seq LIMIT ?"),
            after,
            limit,
            |r| Ok((r.get::<_, i64>(8)? as u64, change_from_row(r)?)),
        )
        .await
    }

    async fn scan_embeddings(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Embedding>, Option<u64>)> {
        self.scan(
            "SELECT rowid, memory_id, model, project_id, user_id, vector FROM embeddings \
             WHERE rowid > ? ORDER BY rowid LIMIT ?"
                .to_string(),
            after,
            limit,
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    Embedding {
                        memory_id: r.get(1)?,
                        model: r.get(2)?,
                        scope: Scope::new(r.get::<_, String>(3)?, r.get::<_, String>(4)?),
                        vector: vector_from_bytes(&r.get::<_, Vec<u8>>(5)?),
                    },
                ))
            },
        )
        .await
    }
}
