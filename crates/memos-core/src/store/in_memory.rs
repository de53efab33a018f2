//! [`InMemoryStore`]: the whole store in a mutex-guarded map. A fast, obviously-correct twin
//! of the real backends for tests; it loses everything on exit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    DocStore, Embedding, KeyStore, Lease, ListQuery, MemoryStore, Page, Revision, StoreScan,
    StoredVector, WriteBatch,
};
use crate::error::Result;
use crate::model::{
    ApiKey, ConversationSummary, Doc, DocSelect, Memory, MemoryChange, MemoryStatus, Message,
    Millis, Scope, Task, TaskStatus, UserSummary,
};

/// A store that lives in memory only.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    next_seq: u64,
    /// Memories by insertion sequence, so scans and ties are stable.
    memories: BTreeMap<u64, Memory>,
    seq_of: BTreeMap<String, u64>,
    messages: Vec<Message>,
    tasks: BTreeMap<String, Task>,
    /// Task id → its lease.
    leases: BTreeMap<String, Lease>,
    keys: Vec<ApiKey>,
    /// (memory id, model) → embedding.
    embeddings: BTreeMap<(String, String), Embedding>,
    /// In write order.
    history: Vec<MemoryChange>,
    /// (kind, project, subject, id) → document.
    docs: BTreeMap<(String, String, String, String), Doc>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; it stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Up to `limit` memories after the sequence number `after` that `keep` accepts, and
    /// the sequence number of the last.
    fn memories_after(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&Memory) -> bool,
    ) -> (Vec<Memory>, Option<u64>) {
        let page: Vec<(u64, Memory)> = self
            .memories
            .range(after.map_or(0, |a| a + 1)..)
            .filter(|(_, m)| keep(m))
            .take(limit)
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        let cursor = page.last().map(|(k, _)| *k);
        (page.into_iter().map(|(_, m)| m).collect(), cursor)
    }

    /// Whether a memory is active or archived and has no vector under `model`.
    fn needs_vector(&self, m: &Memory, model: &str) -> bool {
        m.status != MemoryStatus::Deleted
            && !self
                .embeddings
                .contains_key(&(m.id.clone(), model.to_string()))
    }
}

/// One page of a sequence, the cursor being how many items came before.
fn page<T>(
    items: impl Iterator<Item = T>,
    after: Option<u64>,
    limit: usize,
) -> (Vec<T>, Option<u64>) {
    let skip = after.unwrap_or(0) as usize;
    let out: Vec<T> = items.skip(skip).take(limit).collect();
    let cursor = (!out.is_empty()).then(|| (skip + out.len()) as u64);
    (out, cursor)
}

fn newest_first(a: &Memory, b: &Memory) -> std::cmp::Ordering {
    b.create_time.cmp(&a.create_time)
}

#[async_trait]
impl MemoryStore for InMemoryStore {
    async fn write(&self, batch: WriteBatch) -> Result<Revision> {
        let mut s = self.state();
        let e = &batch.expect;
        for (id, time, status) in &e.memories {
            let now = s.seq_of.get(id).and_then(|seq| s.memories.get(seq));
            if !now.is_some_and(|m| {
                m.scope.project_id == e.project && m.update_time == *time && m.status == *status
            }) {
                return Err(super::Expect::changed(id));
            }
        }
        if let Some(task) = &e.task
            && !s
                .tasks
                .get(task)
                .is_some_and(|t| t.scope.project_id == e.project && t.status == TaskStatus::Running)
        {
            return Err(super::Expect::task_gone(task));
        }
        if let Some(id) = e
            .absent
            .iter()
            .find(|id| s.seq_of.contains_key(*id) || s.messages.iter().any(|m| &m.id == *id))
        {
            return Err(super::Expect::taken(id));
        }
        if let (Some(t), Some(lease)) = (&batch.task, &batch.lease) {
            if s.tasks.contains_key(&t.id)
                && s.leases.get(&t.id).is_some_and(|l| l.owner != lease.owner)
            {
                return Err(super::lease_lost(&t.id));
            }
            s.leases.insert(t.id.clone(), lease.clone());
        }
        s.messages.extend(batch.messages);
        for m in batch.upsert_memories {
            match s.seq_of.get(&m.id) {
                Some(&seq) => {
                    // A vector describes a text: when the text changes, the vector goes.
                    if s.memories.get(&seq).is_some_and(|old| old.value != m.value) {
                        s.embeddings.retain(|(id, _), _| *id != m.id);
                    }
                    s.memories.insert(seq, m);
                }
                None => {
                    s.next_seq += 1;
                    let seq = s.next_seq;
                    s.seq_of.insert(m.id.clone(), seq);
                    s.memories.insert(seq, m);
                }
            }
        }
        for id in batch.delete_memories {
            if let Some(seq) = s.seq_of.remove(&id) {
                s.memories.remove(&seq);
            }
            s.embeddings.retain(|(m, _), _| *m != id);
            s.history.retain(|h| h.memory_id != id);
        }
        s.history.extend(batch.history);
        for e in batch.embeddings {
            s.embeddings
                .insert((e.memory_id.clone(), e.model.clone()), e);
        }
        if let Some(t) = batch.task {
            s.tasks.insert(t.id.clone(), t);
        }
        s.revision += 1;
        Ok(s.revision)
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.state().revision)
    }

    async fn get_memories(&self, project_id: &str, ids: &[String]) -> Result<Vec<Memory>> {
        let s = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| s.seq_of.get(id).and_then(|seq| s.memories.get(seq)))
            .filter(|m| m.scope.project_id == project_id)
            .cloned()
            .collect())
    }

    async fn list_memories(&self, scope: &Scope, q: &ListQuery) -> Result<Page<Memory>> {
        let s = self.state();
        let mut all: Vec<&Memory> = s
            .memories
            .values()
            .rev()
            .filter(|m| &m.scope == scope && q.lists(m.status))
            .filter(|m| {
                q.conversation_id
                    .as_ref()
                    .is_none_or(|c| &m.conversation_id == c)
            })
            .filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m)))
            .filter(|m| q.exclude_type != Some(m.memory_type))
            .collect();
        all.sort_by(|a, b| newest_first(a, b));
        let total = all.len();
        let items = all
            .into_iter()
            .skip(q.offset)
            .take(q.limit)
            .cloned()
            .collect();
        Ok(Page { items, total })
    }

    async fn list_users(
        &self,
        project_id: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Page<UserSummary>> {
        let s = self.state();
        let mut by_user: BTreeMap<&str, UserSummary> = BTreeMap::new();
        for m in s.memories.values() {
            if m.scope.project_id != project_id || m.status == MemoryStatus::Deleted {
                continue;
            }
            let u = by_user
                .entry(m.scope.user_id.as_str())
                .or_insert_with(|| UserSummary {
                    user_id: m.scope.user_id.clone(),
                    memories: 0,
                    last_update: m.update_time,
                });
            u.memories += 1;
            u.last_update = u.last_update.max(m.update_time);
        }
        let mut all: Vec<UserSummary> = by_user.into_values().collect();
        all.sort_by(|a, b| {
            b.last_update
                .cmp(&a.last_update)
                .then_with(|| a.user_id.cmp(&b.user_id))
        });
        let total = all.len();
        let items = all.into_iter().skip(offset).take(limit).collect();
        Ok(Page { items, total })
    }

    async fn list_conversations(
        &self,
        scope: &Scope,
        limit: usize,
        offset: usize,
    ) -> Result<Page<ConversationSummary>> {
        let s = self.state();
        let mut by_id: BTreeMap<&str, ConversationSummary> = BTreeMap::new();
        for m in s.messages.iter().filter(|m| &m.scope == scope) {
            let c =
                by_id
                    .entry(m.conversation_id.as_str())
                    .or_insert_with(|| ConversationSummary {
                        conversation_id: m.conversation_id.clone(),
                        messages: 0,
                        first_chat_time: m.chat_time,
                        last_chat_time: m.chat_time,
                    });
            c.messages += 1;
            c.first_chat_time = c.first_chat_time.min(m.chat_time);
            c.last_chat_time = c.last_chat_time.max(m.chat_time);
        }
        let mut all: Vec<ConversationSummary> = by_id.into_values().collect();
        all.sort_by(|a, b| {
            b.last_chat_time
                .cmp(&a.last_chat_time)
                .then_with(|| a.conversation_id.cmp(&b.conversation_id))
        });
        let total = all.len();
        let items = all.into_iter().skip(offset).take(limit).collect();
        Ok(Page { items, total })
    }

    async fn list_messages(
        &self,
        scope: &Scope,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let s = self.state();
        let mut msgs: Vec<(usize, &Message)> = s
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| &m.scope == scope && m.conversation_id == conversation_id)
            .collect();
        msgs.sort_by_key(|(i, m)| (m.chat_time, *i));
        let skip = msgs.len().saturating_sub(limit);
        Ok(msgs
            .into_iter()
            .skip(skip)
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn task_messages(&self, task_id: &str) -> Result<Vec<Message>> {
        Ok(self
            .state()
            .messages
            .iter()
            .filter(|m| m.task_id == task_id)
            .cloned()
            .collect())
    }

    async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        let mut counts: BTreeMap<&str, (TaskStatus, u64)> = BTreeMap::new();
        for t in self.state().tasks.values() {
            counts.entry(t.status.as_str()).or_insert((t.status, 0)).1 += 1;
        }
        Ok(counts.into_values().collect())
    }

    async fn get_task(&self, project_id: &str, task_id: &str) -> Result<Option<Task>> {
        Ok(self
            .state()
            .tasks
            .get(task_id)
            .filter(|t| t.scope.project_id == project_id)
            .cloned())
    }

    async fn claim_tasks(&self, lease: &Lease, now: Millis, limit: usize) -> Result<Vec<Task>> {
        let mut s = self.state();
        let mut free: Vec<Task> = s
            .tasks
            .values()
            .filter(|t| {
                t.status == TaskStatus::Running && s.leases.get(&t.id).is_none_or(|l| l.until < now)
            })
            .cloned()
            .collect();
        free.sort_by_key(|t| t.create_time);
        free.truncate(limit);
        for t in &free {
            s.leases.insert(t.id.clone(), lease.clone());
        }
        Ok(free)
    }

    async fn renew_task(&self, task_id: &str, lease: &Lease) -> Result<bool> {
        let mut s = self.state();
        let running = s
            .tasks
            .get(task_id)
            .is_some_and(|t| t.status == TaskStatus::Running);
        match s.leases.get_mut(task_id) {
            Some(l) if running && l.owner == lease.owner => {
                l.until = lease.until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_user(&self, scope: &Scope) -> Result<(usize, Revision)> {
        let mut s = self.state();
        let doomed: Vec<(u64, String)> = s
            .memories
            .iter()
            .filter(|(_, m)| &m.scope == scope)
            .map(|(k, m)| (*k, m.id.clone()))
            .collect();
        // Counted as the client saw them: soft-deleted ones were already gone.
        let visible = doomed
            .iter()
            .filter(|(seq, _)| s.memories[seq].status != MemoryStatus::Deleted)
            .count();
        for (seq, id) in &doomed {
            s.memories.remove(seq);
            s.seq_of.remove(id);
        }
        s.messages.retain(|m| &m.scope != scope);
        s.tasks.retain(|_, t| &t.scope != scope);
        s.embeddings.retain(|_, e| &e.scope != scope);
        s.history.retain(|h| &h.scope != scope);
        s.docs
            .retain(|_, d| d.project_id != scope.project_id || d.user_id != scope.user_id);
        s.revision += 1;
        Ok((visible, s.revision))
    }

    async fn user_exists(&self, scope: &Scope) -> Result<bool> {
        let s = self.state();
        Ok(s.memories.values().any(|m| &m.scope == scope)
            || s.messages.iter().any(|m| &m.scope == scope)
            || s.docs
                .values()
                .any(|d| d.project_id == scope.project_id && d.user_id == scope.user_id))
    }

    async fn embeddings(&self, scope: &Scope, model: &str) -> Result<Vec<StoredVector>> {
        let s = self.state();
        Ok(s.embeddings
            .values()
            .filter(|e| &e.scope == scope && e.model == model)
            .filter_map(|e| {
                let m = s
                    .seq_of
                    .get(&e.memory_id)
                    .and_then(|seq| s.memories.get(seq))?;
                (m.status != MemoryStatus::Deleted).then(|| StoredVector {
                    id: e.memory_id.clone(),
                    time: m.memory_time.unwrap_or(m.create_time),
                    archived_at: (m.status == MemoryStatus::Archived).then_some(m.update_time),
                    vector: e.vector.clone(),
                })
            })
            .collect())
    }

    async fn history(&self, project_id: &str, memory_id: &str) -> Result<Vec<MemoryChange>> {
        Ok(self
            .state()
            .history
            .iter()
            .filter(|h| h.memory_id == memory_id && h.scope.project_id == project_id)
            .cloned()
            .collect())
    }

    async fn missing_embeddings(
        &self,
        model: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        let s = self.state();
        Ok(s.memories_after(after, limit, |m| s.needs_vector(m, model)))
    }

    async fn lacking_embeddings(
        &self,
        project_id: &str,
        ids: &[String],
        model: &str,
    ) -> Result<Vec<Memory>> {
        let s = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| s.seq_of.get(id).and_then(|seq| s.memories.get(seq)))
            .filter(|m| m.scope.project_id == project_id && s.needs_vector(m, model))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl KeyStore for InMemoryStore {
    async fn insert_key(&self, key: ApiKey) -> Result<()> {
        let mut s = self.state();
        if s.keys.iter().any(|k| k.hash == key.hash || k.id == key.id) {
            return Err(super::duplicate_key());
        }
        s.keys.push(key);
        Ok(())
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        Ok(self.state().keys.iter().find(|k| k.hash == hash).cloned())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        Ok(self.state().keys.clone())
    }

    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool> {
        let mut s = self.state();
        match s.keys.iter_mut().find(|k| k.id == id) {
            Some(k) => {
                k.revoked_time.get_or_insert(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl DocStore for InMemoryStore {
    async fn put_docs(&self, docs: Vec<Doc>) -> Result<()> {
        let mut s = self.state();
        for d in docs {
            let key = (
                d.kind.clone(),
                d.project_id.clone(),
                d.user_id.clone(),
                d.id.clone(),
            );
            let create_time = s
                .docs
                .get(&key)
                .map_or(d.create_time, |old| old.create_time);
            s.docs.insert(key, Doc { create_time, ..d });
        }
        Ok(())
    }

    async fn list_docs(&self, select: DocSelect<'_>) -> Result<Vec<Doc>> {
        Ok(self
            .state()
            .docs
            .values()
            .filter(|d| select.matches(d))
            .cloned()
            .collect())
    }

    async fn delete_docs(
        &self,
        project_id: &str,
        kind: &str,
        user_id: Option<&str>,
        id: Option<&str>,
    ) -> Result<usize> {
        let select = DocSelect {
            kind: Some(kind),
            project_id: Some(project_id),
            user_id,
            id,
        };
        let mut s = self.state();
        let before = s.docs.len();
        s.docs.retain(|_, d| !select.matches(d));
        Ok(before - s.docs.len())
    }
}

#[async_trait]
impl StoreScan for InMemoryStore {
    async fn scan_messages(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Message>, Option<u64>)> {
        Ok(page(self.state().messages.iter().cloned(), after, limit))
    }

    async fn scan_tasks(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Task>, Option<u64>)> {
        let s = self.state();
        let mut tasks: Vec<Task> = s.tasks.values().cloned().collect();
        tasks.sort_by_key(|t| t.create_time);
        Ok(page(tasks.into_iter(), after, limit))
    }

    async fn scan_history(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<MemoryChange>, Option<u64>)> {
        Ok(page(self.state().history.iter().cloned(), after, limit))
    }

    async fn scan_embeddings(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Embedding>, Option<u64>)> {
        Ok(page(
            self.state().embeddings.values().cloned(),
            after,
            limit,
        ))
    }

    async fn scan_memories(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<u64>)> {
        Ok(self.state().memories_after(after, limit, |_| true))
    }
}
