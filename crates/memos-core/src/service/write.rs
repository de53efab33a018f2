//! The write path: every store write and the index and vector changes it implies, in
//! revision order under one lock, so the index's recorded revision is always a prefix of
//! the store's history.

use std::collections::HashMap;

use tokio::sync::{MutexGuard, oneshot};

use crate::error::{Error, Result};
use crate::model::*;
use crate::search::bm25::IndexOp;
use crate::search::vector::VectorOp;
use crate::store::WriteBatch;

use super::MemoryService;

impl MemoryService {
    /// Writes a batch and waits until its changes are searchable. The index operations and
    /// vector changes come from the batch itself; the memories it leaves active are queued
    /// for the background embedder.
    pub(super) async fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, vec![]).await
    }

    /// [`Self::write`], dropping vectors the batch does not name: those of a hard delete
    /// (the batch holds only ids) and of a changed text.
    pub(super) async fn write_with(&self, batch: WriteBatch, stale: Vec<VectorOp>) -> Result<()> {
        self.lock_writes().await.write(batch, stale).await
    }

    /// Holds off every other write of this process, for a read-modify-write: what the caller
    /// reads after this cannot change before its write lands, so an edit racing a delete
    /// never writes back a memory the delete removed.
    pub(super) async fn lock_writes(&self) -> WriteGuard<'_> {
        WriteGuard {
            svc: self,
            order: self.write_lock.lock().await,
        }
    }

    /// Writes a batch that changes nothing searchable (a task's state, an async add's
    /// messages) without waiting for the index.
    pub(super) async fn record(&self, batch: WriteBatch) -> Result<()> {
        let _order = self.write_lock.lock().await;
        drop(self.write_locked(batch, vec![]).await?);
        Ok(())
    }

    /// The write itself, for callers holding the write lock: the store first, then the
    /// retrieval side in the store's revision order. The receiver reports when the changes
    /// are searchable.
    pub(super) async fn write_locked(
        &self,
        batch: WriteBatch,
        stale: Vec<VectorOp>,
    ) -> Result<oneshot::Receiver<Result<()>>> {
        let ops = index_ops(&batch);
        let mut vectors = vector_ops(&batch);
        vectors.extend(stale);
        let revision = self.store.write(batch).await?;
        self.retrieval.apply(ops, &vectors, revision)
    }
}

/// The write lock, held from a read to the write that depends on it.
pub(super) struct WriteGuard<'a> {
    svc: &'a MemoryService,
    order: MutexGuard<'a, ()>,
}

impl WriteGuard<'_> {
    /// [`MemoryService::write_with`] under this lock, which it releases before waiting for
    /// the index.
    pub(super) async fn write(self, batch: WriteBatch, stale: Vec<VectorOp>) -> Result<()> {
        let queued = written_ids(&batch.upsert_memories);
        let wait = self.svc.write_locked(batch, stale).await?;
        let WriteGuard { svc, order } = self;
        drop(order);
        indexed(wait).await?;
        svc.queue_vectors(queued);
        Ok(())
    }
}

/// The lexical index changes a batch implies: each memory written is replaced whole, each
/// id deleted goes.
fn index_ops(batch: &WriteBatch) -> Vec<IndexOp> {
    batch
        .upsert_memories
        .iter()
        .map(|m| IndexOp::Upsert(Box::new(m.clone())))
        .chain(batch.delete_memories.iter().cloned().map(IndexOp::Delete))
        .collect()
}

/// (project, id) of each active memory, for [`MemoryService::queue_vectors`].
fn written_ids(memories: &[Memory]) -> Vec<(String, String)> {
    memories
        .iter()
        .filter(|m| m.status == MemoryStatus::Activated)
        .map(|m| (m.scope.project_id.clone(), m.id.clone()))
        .collect()
}

/// The vector changes a batch implies, known before it is written.
fn vector_ops(batch: &WriteBatch) -> Vec<VectorOp> {
    let written: HashMap<&str, &Memory> = batch
        .upsert_memories
        .iter()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut ops: Vec<VectorOp> = batch
        .upsert_memories
        .iter()
        .filter(|m| m.status != MemoryStatus::Activated)
        .map(|m| VectorOp::Delete {
            scope: m.scope.clone(),
            id: m.id.clone(),
        })
        .collect();
    for e in &batch.embeddings {
        match written.get(e.memory_id.as_str()) {
            Some(m) if m.status != MemoryStatus::Activated => {}
            Some(m) => ops.push(VectorOp::Upsert {
                scope: e.scope.clone(),
                id: e.memory_id.clone(),
                time: m.memory_time.unwrap_or(m.create_time),
                vector: e.vector.clone(),
            }),
            // A vector of a memory written earlier: the caller supplies its op.
            None => {}
        }
    }
    ops
}

/// Waits until the index writer has committed a write's changes: from then on they are
/// searchable.
pub(super) async fn indexed(wait: oneshot::Receiver<Result<()>>) -> Result<()> {
    wait.await
        .map_err(|_| Error::Unavailable("index writer stopped".into()))?
}
