//! The fine path: with an LLM configured, a task re-extracts an add's messages and
//! replaces the fast path's facts with the LLM's.

use crate::error::{Error, Result};
use crate::ingest::AddContext;
use crate::ingest::llm::LlmExtractor;
use crate::ingest::reconcile::{self};
use crate::model::*;
use crate::search::vector::VectorOp;
use crate::store::WriteBatch;

use super::tasks::new_task;
use crate::store::Expect;

use super::MemoryService;

impl MemoryService {
    /// Records and queues an LLM refinement of a finished fast-path add.
    pub(super) async fn queue_refinement(&self, ctx: &AddContext, source: &Task) -> Result<String> {
        let now = now_millis();
        let ctx = AddContext {
            refine_of: Some(source.id.clone()),
            fast_ids: source.memory_ids.clone(),
            ..ctx.clone()
        };
        let task = new_task(new_id(), &ctx, now);
        self.record(WriteBatch {
            task: Some(task.clone()),
            lease: Some(self.lease()),
            ..Default::default()
        })
        .await?;
        let id = task.id.clone();
        self.tasks
            .send(task)
            .map_err(|_| Error::Unavailable("task worker stopped".into()))?;
        Ok(id)
    }

    /// The fine path over `messages`: asks the LLM for memory items, rewrites the fast-path
    /// items they restate in place (same id, history `updated`), and reconciles the rest
    /// with the stored memories like any new fact. Returns the ids it wrote. The write lands
    /// only while `task` runs and the memories it rewrites are as read: the LLM may take
    /// long, and the user may delete or erase meanwhile.
    pub(super) async fn refine(
        &self,
        llm: &LlmExtractor,
        ctx: &AddContext,
        messages: &[Message],
        fast_ids: &[String],
        task: &str,
    ) -> Result<Vec<String>> {
        let now = now_millis();
        let items = llm.extract(ctx, messages, now).await?;
        let mut fast: Vec<Memory> = self
            .store
            .get_memories(&ctx.scope.project_id, fast_ids)
            .await?
            .into_iter()
            .filter(|m| m.scope == ctx.scope && m.status == MemoryStatus::Activated)
            .collect();
        let read_times: Vec<Millis> = fast.iter().map(|m| m.update_time).collect();
        let mut refined: Vec<usize> = Vec::new();
        let mut ids = Vec::new();
        let mut history = Vec::new();
        let mut fresh = Vec::new();
        for item in items {
            // The fast fact this item restates: made from a message it names, and
            // sharing enough words, not already refined by an earlier item.
            let target = fast.iter().enumerate().position(|(i, f)| {
                !refined.contains(&i)
                    && f.memory_type == MemoryType::UserMemory
                    && item.memory_type == MemoryType::UserMemory
                    && f.sources
                        .iter()
                        .any(|s| item.sources.iter().any(|t| t.message_id == s.message_id))
                    && reconcile::overlap(&item, f) >= REFINE_OVERLAP
            });
            match target {
                Some(i) => {
                    let f = &mut fast[i];
                    history.push(MemoryChange {
                        memory_id: f.id.clone(),
                        scope: f.scope.clone(),
                        time: now,
                        kind: ChangeKind::Updated,
                        related_id: None,
                        before: Some(f.value.clone()),
                        note: format!("refined by the LLM ({})", llm.model()),
                    });
                    f.key = item.key;
                    f.value = item.value;
                    f.tags = item.tags;
                    f.memory_time = item.memory_time;
                    f.confidence = item.confidence;
                    // The model's reason for an inferred preference stays with the item it
                    // rewrote, as it does with the items it adds.
                    if item.reasoning.is_some() {
                        f.reasoning = item.reasoning;
                    }
                    f.update_time = now;
                    refined.push(i);
                    ids.push(f.id.clone());
                }
                None => fresh.push(item),
            }
        }
        let reconciled = self.reconcile(&ctx.scope, fresh, now).await?;
        let mut expect = Expect::task(&ctx.scope.project_id, task);
        expect.memories = reconciled.read;
        expect.memories.extend(
            refined
                .iter()
                .map(|&i| (fast[i].id.clone(), read_times[i], MemoryStatus::Activated)),
        );
        ids.extend(reconciled.ids);
        history.extend(reconciled.history);
        let mut memories: Vec<Memory> = refined.iter().map(|&i| fast[i].clone()).collect();
        memories.extend(reconciled.memories);
        // Refined texts lose their old vectors (the store drops them); the RAM copies go too.
        let extra: Vec<VectorOp> = refined
            .iter()
            .map(|&i| VectorOp::Delete {
                scope: fast[i].scope.clone(),
                id: fast[i].id.clone(),
            })
            .collect();
        self.write(
            WriteBatch {
                upsert_memories: memories,
                history,
                expect,
                ..Default::default()
            },
            extra,
        )
        .await?;
        // The subject's bound profiles follow what was said; a failure here leaves the
        // refined memories standing.
        if let Err(e) = self.fill_profiles(llm, &ctx.scope, messages).await {
            tracing::warn!(error = %e, "profile update by the LLM failed");
        }
        Ok(ids)
    }
}

/// Word overlap at which an LLM item restates a fast-path fact from the same message.
pub(super) const REFINE_OVERLAP: f32 = 0.3;
