//! Adding messages: validation, the chat log, fast extraction, and reconciling new facts
//! with the stored ones (merge a repeat, archive what a change supersedes).

use super::tasks::new_task;
use crate::error::{Error, InputErrorKind, Result};
use crate::filter::{Condition, Filter, Logic, TimeField};
use crate::ingest::reconcile::{self, Relation};
use crate::ingest::{AddContext, fast};
use crate::model::*;
use crate::search::TimeRange;
use crate::store::{Expect, ListQuery, WriteBatch};

use super::MemoryService;
use super::input::{AddInput, AddOutcome, MAX_PAGE_SIZE, NewMessage};

/// Most knowledge bases one add may write into.
const MAX_SHARED_BASES: usize = 20;

impl MemoryService {
    /// Stores messages and turns them into memories.
    pub async fn add(&self, project_id: &str, input: AddInput) -> Result<AddOutcome> {
        self.check_user(&input.user_id)?;
        self.check_id(
            "conversation_id",
            &input.conversation_id,
            InputErrorKind::ConversationIdTooLong,
        )?;
        self.check_optional_id("agent_id", &input.agent_id)?;
        self.check_optional_id("app_id", &input.app_id)?;
        self.check_messages(&input.messages)?;
        let limits = &self.config.limits;
        if input.tags.len() > limits.max_tags {
            return Err(Error::invalid(
                "tags",
                format!("at most {} tags per add", limits.max_tags),
            ));
        }
        for (i, t) in input.tags.iter().enumerate() {
            self.check_id(&format!("tags[{i}]"), t, InputErrorKind::Invalid)?;
        }

        // Bases the memories may also go to: each must be this project's, checked before
        // anything is stored.
        if input.knowledgebase_ids.len() > MAX_SHARED_BASES {
            return Err(Error::invalid(
                "allow_knowledgebase_ids",
                format!("at most {MAX_SHARED_BASES} knowledge bases per add"),
            ));
        }
        for kb in &input.knowledgebase_ids {
            self.knowledgebase(project_id, kb).await?;
        }
        let mut knowledgebase_ids = input.knowledgebase_ids;
        if input.public {
            let public = self.public_knowledgebase(project_id).await?;
            if !knowledgebase_ids.contains(&public) {
                knowledgebase_ids.push(public);
            }
        }

        let scope = Scope::new(project_id, input.user_id.clone());
        let now = now_millis();
        let task_id = uuid::Uuid::new_v4().to_string();
        let messages = build_messages(
            &scope,
            &input.conversation_id,
            &task_id,
            now,
            &input.messages,
        );
        let ctx = AddContext {
            scope: scope.clone(),
            conversation_id: input.conversation_id.clone(),
            tags: input.tags,
            info: input.info,
            agent_id: input.agent_id,
            app_id: input.app_id,
            knowledgebase_ids,
            ..Default::default()
        };
        let mut task = new_task(task_id.clone(), &ctx, now);

        if input.async_mode {
            self.accept_task(task, messages).await?;
            return Ok(AddOutcome {
                task_id,
                status: TaskStatus::Running,
                memory_ids: vec![],
                refine_task_id: None,
            });
        }

        task.status = TaskStatus::Completed;
        let batch = WriteBatch {
            messages: messages.clone(),
            ..Default::default()
        };
        self.extract_and_write(&ctx, &messages, &mut task, batch, false)
            .await?;
        self.share_with_knowledgebases(&ctx, &task.memory_ids, None)
            .await?;
        // The fine path runs after the fast one has answered: its own task, durable, which
        // refines the ids just handed out in place.
        let refine_task_id = match &self.llm {
            Some(_) => Some(self.queue_refinement(&ctx, &task).await?),
            None => None,
        };
        Ok(AddOutcome {
            task_id,
            status: TaskStatus::Completed,
            memory_ids: task.memory_ids,
            refine_task_id,
        })
    }

    /// The fast path, shared by sync adds and add tasks: extracts `messages`, relates the
    /// facts to the stored ones and writes the memories with `rest` (a sync add's messages,
    /// a task's lease) and `task` in one batch. When what reconciling read changed before
    /// the write (a merge target deleted, edited or erased meanwhile), it starts over from
    /// a fresh read, a few times. A `stored` task must still run when the write lands: an
    /// erase of its user ends it, with nothing written. `task` gets the ids to report.
    pub(super) async fn extract_and_write(
        &self,
        ctx: &AddContext,
        messages: &[Message],
        task: &mut Task,
        rest: WriteBatch,
        stored: bool,
    ) -> Result<()> {
        let mut attempt = 0;
        // A task's sentences wait for no request: they are embedded in the background.
        let judged = self.judge_sentences(messages, stored).await?;
        loop {
            let previous = self
                .previous_message(&ctx.scope, &ctx.conversation_id, messages)
                .await?;
            let now = now_millis();
            let extracted = fast::extract_judged(ctx, messages, previous.as_ref(), now, &judged);
            let Reconciled {
                memories,
                ids,
                history,
                read,
            } = self.reconcile(&ctx.scope, extracted, now).await?;
            let embeddings = self.inline_embeddings(&memories, &judged).await?;
            task.memory_ids = ids;
            task.update_time = now;
            let batch = WriteBatch {
                upsert_memories: memories,
                task: Some(task.clone()),
                embeddings,
                history,
                expect: Expect {
                    project: ctx.scope.project_id.clone(),
                    memories: read,
                    task: stored.then(|| task.id.clone()),
                    absent: vec![],
                },
                ..rest.clone()
            };
            match self.write(batch, vec![]).await {
                Err(Error::Conflict(why)) if attempt < RECONCILE_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(task = %task.id, %why, "reconciling again");
                }
                other => return other,
            }
        }
    }

    /// Relates each new profile fact to what the user said before ([`reconcile::relate`]):
    /// a repeat merges into the older item (its id survives and is the one reported, its
    /// `update_time` moves, its sources grow); a contradiction archives the older item and
    /// links the two in their histories. Other memories pass through.
    pub(super) async fn reconcile(
        &self,
        scope: &Scope,
        extracted: Vec<Memory>,
        now: Millis,
    ) -> Result<Reconciled> {
        let mut out = Reconciled::default();
        if !extracted
            .iter()
            .any(|m| m.memory_type == MemoryType::UserMemory)
        {
            out.ids = extracted.iter().map(|m| m.id.clone()).collect();
            out.memories = extracted;
            return Ok(out);
        }
        let profile = Filter::only(Condition::MemoryType(MemoryType::UserMemory));
        for new in extracted {
            if new.memory_type != MemoryType::UserMemory {
                out.ids.push(new.id.clone());
                out.memories.push(new);
                continue;
            }
            // Earlier facts of this same add first, then the closest stored ones.
            let mut candidates: Vec<Memory> = out
                .memories
                .iter()
                .filter(|m| {
                    m.memory_type == MemoryType::UserMemory && m.status == MemoryStatus::Activated
                })
                .cloned()
                .collect();
            let hits = self
                .lexical_candidates(
                    scope,
                    &new.value,
                    Some(&profile),
                    TimeRange::default(),
                    RECONCILE_CANDIDATES,
                    std::time::Instant::now(),
                )
                .await?;
            let score: std::collections::HashMap<String, f32> =
                hits.into_iter().map(|c| (c.id, c.score)).collect();
            let ids: Vec<String> = score.keys().cloned().collect();
            let mut stored = self.store.get_memories(&scope.project_id, &ids).await?;
            // The first related candidate is the one merged into or superseded, so the order
            // decides, and it must not depend on the store's answer order or on random ids (a
            // property test caught two stores archiving different facts here): most relevant
            // first, then the newest, then by content. Scores are compared rounded: stores
            // sum the same BM25 terms in different orders and precisions, and an exact tie in
            // one must stay a tie in the other.
            stored.sort_by(|a, b| {
                let s = |m: &Memory| {
                    let raw = score.get(&m.id).copied().unwrap_or(0.0);
                    (raw * 1e4).round() as i64
                };
                s(b).cmp(&s(a))
                    .then(b.create_time.cmp(&a.create_time))
                    .then_with(|| a.value.cmp(&b.value))
            });
            candidates.extend(stored.into_iter().filter(|m| {
                m.scope == *scope
                    && m.status == MemoryStatus::Activated
                    && !out.memories.iter().any(|o| o.id == m.id)
            }));
            let relation = |r| {
                candidates
                    .iter()
                    .find(|old| reconcile::relate(&new, old) == r)
            };
            if let Some(old) = relation(Relation::Repeat) {
                out.note_read(old);
                let mut old = out
                    .memories
                    .iter()
                    .find(|m| m.id == old.id)
                    .cloned()
                    .unwrap_or_else(|| old.clone());
                for src in &new.sources {
                    if !old.sources.iter().any(|s| s.message_id == src.message_id) {
                        old.sources.push(src.clone());
                    }
                }
                for t in &new.tags {
                    if !old.tags.contains(t) {
                        old.tags.push(t.clone());
                    }
                }
                old.update_time = now;
                out.history.push(MemoryChange {
                    memory_id: old.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Merged,
                    related_id: None,
                    before: None,
                    note: new.value.clone(),
                });
                if !out.ids.contains(&old.id) {
                    out.ids.push(old.id.clone());
                }
                out.upsert(old);
                continue;
            }
            if let Some(old) = relation(Relation::Contradicts) {
                out.note_read(old);
                let mut old = old.clone();
                out.history.push(MemoryChange {
                    memory_id: old.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Superseded,
                    related_id: Some(new.id.clone()),
                    before: Some(old.value.clone()),
                    note: new.value.clone(),
                });
                out.history.push(MemoryChange {
                    memory_id: new.id.clone(),
                    scope: scope.clone(),
                    time: now,
                    kind: ChangeKind::Supersedes,
                    related_id: Some(old.id.clone()),
                    before: None,
                    note: old.value.clone(),
                });
                old.status = MemoryStatus::Archived;
                old.update_time = now;
                // The turns that said the old fact stay (what was said is a record), but
                // marked outdated, so a search ranks them below what replaced it.
                for mut turn in self.turns_stating(scope, &old).await? {
                    out.note_read(&turn);
                    turn.confidence = turn.confidence.min(OUTDATED_CONFIDENCE);
                    turn.update_time = now;
                    out.history.push(MemoryChange {
                        memory_id: turn.id.clone(),
                        scope: scope.clone(),
                        time: now,
                        kind: ChangeKind::Outdated,
                        related_id: Some(new.id.clone()),
                        before: None,
                        note: new.value.clone(),
                    });
                    out.upsert(turn);
                }
                out.upsert(old);
            }
            out.ids.push(new.id.clone());
            out.memories.push(new);
        }
        Ok(out)
    }

    /// The current verbatim turns (`LongTermMemory`) made from the messages a profile fact
    /// came from: found by conversation and the message's time, then by message id.
    async fn turns_stating(&self, scope: &Scope, fact: &Memory) -> Result<Vec<Memory>> {
        let mut out: Vec<Memory> = Vec::new();
        for src in &fact.sources {
            let q = ListQuery {
                filter: Some(Filter {
                    logic: Logic::And,
                    conditions: vec![
                        Condition::MemoryType(MemoryType::LongTermMemory),
                        Condition::Time {
                            field: TimeField::MemoryTime,
                            min: Some(src.chat_time),
                            max: Some(src.chat_time),
                        },
                    ],
                }),
                conversation_id: Some(src.conversation_id.clone()),
                limit: MAX_PAGE_SIZE,
                statuses: Some(vec![MemoryStatus::Activated]),
                ..Default::default()
            };
            for m in self.store.list_memories(scope, &q).await?.items {
                let said = m.sources.iter().any(|s| s.message_id == src.message_id);
                if said && !out.iter().any(|o| o.id == m.id) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// The conversation's last turn before `messages`, for short-reply context.
    pub(super) async fn previous_message(
        &self,
        scope: &Scope,
        conversation_id: &str,
        messages: &[Message],
    ) -> Result<Option<Message>> {
        let Some(first) = messages.first() else {
            return Ok(None);
        };
        let recent = self
            .store
            .list_messages(scope, conversation_id, messages.len() + 4)
            .await?;
        Ok(recent
            .into_iter()
            .filter(|m| m.task_id != first.task_id && m.chat_time <= first.chat_time)
            .rfind(|m| matches!(m.role, Role::User | Role::Assistant)))
    }
}

/// What an add writes once its facts are related to the stored ones.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// New memories, and older ones that were merged into or archived.
    pub(super) memories: Vec<Memory>,
    /// The ids the add reports: new memories, and the older ones repeats merged into.
    pub(super) ids: Vec<String>,
    /// History entries of the merges and supersessions.
    pub(super) history: Vec<MemoryChange>,
    /// The stored memories it changes, as read: the write lands only if they still are.
    pub(super) read: Vec<(String, Millis, MemoryStatus)>,
}

impl Reconciled {
    /// Notes a candidate about to be changed, when it comes from the store rather than
    /// from this same add.
    fn note_read(&mut self, m: &Memory) {
        if !self.memories.iter().any(|o| o.id == m.id) && !self.read.iter().any(|r| r.0 == m.id) {
            self.read.push((m.id.clone(), m.update_time, m.status));
        }
    }

    fn upsert(&mut self, m: Memory) {
        match self.memories.iter_mut().find(|o| o.id == m.id) {
            Some(o) => *o = m,
            None => self.memories.push(m),
        }
    }
}

/// The confidence of a verbatim turn whose fact was superseded ([`ChangeKind::Outdated`]):
/// below any fresh memory's, which is how a search knows to look at its history.
pub(super) const OUTDATED_CONFIDENCE: f32 = 0.5;

/// Stored facts a new fact is compared with.
pub(super) const RECONCILE_CANDIDATES: usize = 8;
/// Fresh reads an add retries with when a memory it merges into changes under it.
const RECONCILE_ATTEMPTS: usize = 3;

/// The chat-log rows of an add's messages, as they are stored.
pub(super) fn build_messages(
    scope: &Scope,
    conversation_id: &str,
    task_id: &str,
    now: Millis,
    input: &[NewMessage],
) -> Vec<Message> {
    input
        .iter()
        .map(|m| {
            let id = uuid::Uuid::new_v4().to_string();
            Message {
                message_id: m.message_id.clone().unwrap_or_else(|| id.clone()),
                id,
                scope: scope.clone(),
                conversation_id: conversation_id.to_string(),
                role: m.role,
                name: m.name.clone(),
                content: m.content.clone(),
                chat_time: m.chat_time.unwrap_or(now),
                create_time: now,
                task_id: task_id.to_string(),
                raw: m.raw.clone(),
            }
        })
        .collect()
}
