//! Background add tasks: leases that let several servers share one database, the worker
//! that runs them, and the claimer that takes over the tasks of a server that stopped.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use crate::error::{Error, NotFoundKind, Result};
use crate::ingest::AddContext;
use crate::model::*;
use crate::store::{Lease, MemoryStore, WriteBatch};

use super::MemoryService;
use crate::store::Expect;

impl MemoryService {
    /// A lease on a task for this service, from now.
    pub(super) fn lease(&self) -> Lease {
        Lease {
            owner: self.worker_id.clone(),
            until: now_millis() + self.config.store.task_lease_ms as Millis,
        }
    }

    /// Accepts a task for the background: durable first (with `messages`, an async add's
    /// chat log), so once its client holds the id a crash cannot lose it and a restart
    /// finishes it, then queued for this server's worker.
    pub(super) async fn accept_task(&self, task: Task, messages: Vec<Message>) -> Result<()> {
        self.record(WriteBatch {
            messages,
            task: Some(task.clone()),
            lease: Some(self.lease()),
            ..Default::default()
        })
        .await?;
        self.tasks
            .send(task)
            .map_err(|_| Error::Unavailable("task worker stopped".into()))
    }

    /// Claims running tasks whose worker stopped renewing them (a crashed server, or this
    /// one's previous life) and queues them here. Returns how many.
    pub(super) async fn claim_orphaned_tasks(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let tasks = self
                .store
                .claim_tasks(&self.lease(), now_millis(), 64)
                .await?;
            if tasks.is_empty() {
                return Ok(n);
            }
            n += tasks.len();
            for t in tasks {
                let _ = self.tasks.send(t);
            }
        }
    }

    /// Finishes an async add. Two writes, so that `completed` always means searchable:
    /// first the memories, with their ids recorded on the still-running task; then, once the
    /// index has them, the completion. A restart between the two finds the ids on the task
    /// and completes it without extracting again, so no memory is made twice.
    pub(super) async fn process_task(&self, mut task: Task) {
        // Queued tasks may have waited past their lease and gone to another server.
        match self.store.renew_task(&task.id, &self.lease()).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "could not renew a task lease; leaving the task to the next claim");
                return;
            }
        }
        // Aborted when dropped, so a panic in the task stops the renewals too.
        let _heartbeat = AbortOnDrop(tokio::spawn(renew_while_working(
            self.store.clone(),
            task.id.clone(),
            self.worker_id.clone(),
            self.config.store.task_lease_ms,
        )));
        self.run_task(&mut task).await;
    }

    /// The work of an async add's task: extraction (or an LLM refinement of an earlier
    /// add), its memory ids left on `task`.
    async fn run_add_task(&self, task: &mut Task) -> Result<()> {
        let ctx: AddContext = serde_json::from_value(task.payload.clone())
            .map_err(|e| Error::Corrupt(format!("task payload: {e}")))?;
        if let Some(source) = &ctx.refine_of {
            let llm = self
                .llm
                .clone()
                .ok_or_else(|| Error::Extraction("no LLM is configured any more".into()))?;
            let messages = self.store.task_messages(source).await?;
            task.memory_ids = self
                .refine(&llm, &ctx, &messages, &ctx.fast_ids, &task.id)
                .await?;
        } else if task.memory_ids.is_empty() {
            let messages = self.store.task_messages(&task.id).await?;
            let rest = WriteBatch {
                lease: Some(self.lease()),
                ..Default::default()
            };
            self.extract_and_write(&ctx, &messages, task, rest, true)
                .await?;
            // Async adds wait for the fine path too: `completed` covers both.
            if let Some(llm) = self.llm.clone() {
                let fast_ids = task.memory_ids.clone();
                match self
                    .refine(&llm, &ctx, &messages, &fast_ids, &task.id)
                    .await
                {
                    Ok(more) => {
                        for id in more {
                            if !task.memory_ids.contains(&id) {
                                task.memory_ids.push(id);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(task = %task.id, error = %e, "LLM extraction failed; the fast-path memories stand")
                    }
                }
            }
        }
        if ctx.refine_of.is_none() {
            // Also when a restart found the ids on the task: the copies' ids derive from
            // the originals', so writing them again changes nothing.
            self.share_with_knowledgebases(&ctx, &task.memory_ids, Some(&task.id))
                .await?;
        }
        Ok(())
    }

    /// Counts a transient failure of a task; returns how many it has had.
    fn note_failure(&self, task: &str) -> u32 {
        let mut f = self.task_failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(task.to_string()).or_default();
        *n += 1;
        *n
    }

    /// Transient failures of a task so far.
    #[cfg(test)]
    fn failures_of(&self, task: &str) -> u32 {
        self.task_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task)
            .copied()
            .unwrap_or(0)
    }

    fn forget_failures(&self, task: &str) {
        self.task_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
    }

    /// Records a task as failed for good, with the message its client will read.
    async fn fail_task(&self, task: &mut Task, why: &str) {
        task.status = TaskStatus::Failed;
        task.error = Some(why.to_string());
        task.update_time = now_millis();
        if let Err(e) = self
            .record(WriteBatch {
                task: Some(task.clone()),
                lease: Some(self.lease()),
                expect: Expect::task(&task.scope.project_id, &task.id),
                ..Default::default()
            })
            .await
        {
            tracing::error!(task = %task.id, error = %e, "could not record the task failure");
        }
    }

    /// The work of [`Self::process_task`], while its lease is renewed.
    pub(super) async fn run_task(&self, task: &mut Task) {
        // A failpoint for the worker's own test: a task that panics mid-way.
        #[cfg(test)]
        if task.payload.get("panic_for_test").is_some() {
            panic!("injected panic in task {}", task.id);
        }
        let result: Result<()> = async {
            // A failpoint for the retry test: the store failing the task's first writes.
            #[cfg(test)]
            if let Some(n) = task
                .payload
                .get("fail_transient_for_test")
                .and_then(|v| v.as_u64())
                && self.failures_of(&task.id) < n as u32
            {
                return Err(Error::Unavailable("injected storage failure".into()));
            }
            if task.payload.get(super::knowledge::FILE_TASK).is_some() {
                // A large knowledge-base file: completed, or failed with the reason the
                // file cannot be read (that is the file's answer, not a task error).
                self.run_file_task(task).await?;
            } else {
                self.run_add_task(task).await?;
            }
            if task.status == TaskStatus::Running {
                task.status = TaskStatus::Completed;
            }
            task.update_time = now_millis();
            self.record(WriteBatch {
                task: Some(task.clone()),
                lease: Some(self.lease()),
                expect: Expect::task(&task.scope.project_id, &task.id),
                ..Default::default()
            })
            .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            // Its user was erased while it ran: nothing of it may come back, its row included.
            Err(Error::NotFound {
                kind: NotFoundKind::Task,
                ..
            }) => {
                self.forget_failures(&task.id);
                tracing::info!(task = %task.id, "add task dropped: its user was erased");
            }
            // A full disk or a lost connection: leave the task running, unrenewed. Its lease
            // runs out and a claimer (this server's or another's) takes it up again, so the
            // lease is the backoff; the messages are safe in the chat log meanwhile.
            Err(e) if e.is_transient() && self.note_failure(&task.id) <= MAX_TASK_RETRIES => {
                tracing::warn!(task = %task.id, error = %e, "add task hit a transient failure; it is retried when its lease runs out");
            }
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "add task failed");
                self.forget_failures(&task.id);
                let why = failure_message(task);
                self.fail_task(task, why).await;
            }
        }
        if task.status == TaskStatus::Completed {
            self.forget_failures(&task.id);
        }
    }

    /// How many tasks of every project are in each state (the operator's metrics).
    pub async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        self.store.task_counts().await
    }

    /// A task's state.
    pub async fn task(&self, project_id: &str, task_id: &str) -> Result<Task> {
        if task_id.trim().is_empty() {
            return Err(Error::required("task_id"));
        }
        self.store
            .get_task(project_id, task_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("task {task_id}"), NotFoundKind::Task))
    }
}

/// Renews a task's lease every third of its length until aborted, so that other servers
/// leave the task alone while this one works on it, however long an LLM takes.
pub(super) async fn renew_while_working(
    store: Arc<dyn MemoryStore>,
    task_id: String,
    owner: String,
    lease_ms: u64,
) {
    let every = std::time::Duration::from_millis((lease_ms / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        let lease = Lease {
            owner: owner.clone(),
            until: now_millis() + lease_ms as Millis,
        };
        match store.renew_task(&task_id, &lease).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => tracing::warn!(task = %task_id, error = %e, "could not renew a task lease"),
        }
    }
}

/// Every half lease, takes over the tasks of servers that stopped renewing theirs.
pub(super) async fn task_claimer(svc: Weak<MemoryService>) {
    loop {
        let every = match svc.upgrade() {
            Some(s) => std::time::Duration::from_millis((s.config.store.task_lease_ms / 2).max(1)),
            None => break,
        };
        tokio::time::sleep(every).await;
        let Some(svc) = svc.upgrade() else { break };
        match svc.claim_orphaned_tasks().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                tasks = n,
                "took over add tasks another worker stopped renewing"
            ),
            Err(e) => tracing::warn!(error = %e, "could not claim orphaned tasks"),
        }
    }
}

/// A running task carrying `ctx`, whose scope it takes; made now.
pub(super) fn new_task(id: String, ctx: &AddContext, now: Millis) -> Task {
    Task {
        id,
        scope: ctx.scope.clone(),
        status: TaskStatus::Running,
        payload: serde_json::to_value(ctx).expect("context serialises"),
        memory_ids: vec![],
        error: None,
        create_time: now,
        update_time: now,
    }
}

/// Transient failures a task survives before it is failed for good (each waits out a lease).
const MAX_TASK_RETRIES: u32 = 5;

/// What a failed task tells its client.
fn failure_message(task: &Task) -> &'static str {
    if task.payload.get(super::knowledge::FILE_TASK).is_some() {
        "the file could not be stored; add it again"
    } else if task.payload.get("refine_of").is_some() {
        "LLM extraction failed; the fast-path memories stand"
    } else {
        "memory extraction failed; the messages are kept in the chat log"
    }
}

/// A spawned future that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs queued tasks one at a time, each in a tokio task of its own: a panic in one (a bug
/// some input found) marks that task failed for good, so a restart does not pick it up
/// again, and the worker goes on with the next (issue 13).
pub(super) async fn task_worker(svc: Weak<MemoryService>, mut rx: mpsc::UnboundedReceiver<Task>) {
    while let Some(task) = rx.recv().await {
        let Some(svc) = svc.upgrade() else { break };
        let mut record = task.clone();
        let run = tokio::spawn({
            let svc = svc.clone();
            async move { svc.process_task(task).await }
        });
        if let Err(e) = run.await {
            tracing::error!(task = %record.id, error = %e, "add task panicked; marked failed");
            let why = failure_message(&record);
            svc.fail_task(&mut record, why).await;
        }
    }
}
