//! What the PostgreSQL store keeps beside memories: API keys ([`KeyStore`]), JSON documents
//! ([`DocStore`]) and the write-order pages `memos migrate` copies ([`StoreScan`]).

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::{
    PgRow, PostgresStore, Prepared, change_from_row, key_from_row, memory_from_row,
    message_from_row, pg, task_from_row, vector_parse,
};
use crate::error::Result;
use crate::model::*;
use crate::store::sql::{
    self, CHANGE_COLUMNS, DOC_COLUMNS, Dialect, KEY_COLUMNS, MEMORY_COLUMNS, MESSAGE_COLUMNS,
    TASK_COLUMNS,
};
use crate::store::{DocStore, Embedding, KeyStore, StoreScan};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, key: ApiKey) -> Result<()> {
        let c = self.client().await?;
        let res = c
            .execute(
                &c.prepared(&format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .await?,
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
                Err(crate::store::duplicate_key())
            }
            Err(e) => Err(pg(e)),
        }
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        let c = self.client().await?;
        c.query_opt(
            &c.prepared(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"
            ))
            .await?,
            &[&hash],
        )
        .await
        .map_err(pg)?
        .as_ref()
        .map(key_from_row)
        .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let c = self.client().await?;
        c.query(
            &c.prepared(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY create_time, seq"
            ))
            .await?,
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(key_from_row)
        .collect()
    }

    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prepared(
                    "UPDATE api_keys SET revoked_time = coalesce(revoked_time, $2) WHERE id = $1",
                )
                .await?,
                &[&id, &at],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl DocStore for PostgresStore {
    async fn put_docs(&self, docs: Vec<Doc>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        for d in &docs {
            tx.execute(
                &tx.prepared(&format!(
                    "INSERT INTO docs ({DOC_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, project_id, user_id, id) \
                 DO UPDATE SET body = excluded.body, update_time = excluded.update_time"
                ))
                .await?,
                &[
                    &d.kind,
                    &d.project_id,
                    &d.user_id,
                    &d.id,
                    &d.body,
                    &d.create_time,
                    &d.update_time,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn list_docs(&self, select: DocSelect<'_>) -> Result<Vec<Doc>> {
        let (sql, bound) = sql::docs_where(&select, Dialect::Postgres);
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prepared(&format!(
                    "SELECT {DOC_COLUMNS} FROM docs \
                     WHERE {sql} ORDER BY kind COLLATE \"C\", project_id COLLATE \"C\", \
                     user_id COLLATE \"C\", id COLLATE \"C\""
                ))
                .await?,
                &refs,
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| sql::doc(&PgRow(r))).collect()
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
            Dialect::Postgres,
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prepared(&format!("DELETE FROM docs WHERE {sql}")).await?,
                &refs,
            )
            .await
            .map_err(pg)?;
        Ok(n as usize)
    }
}

#[async_trait]
impl StoreScan for PostgresStore {
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
}
