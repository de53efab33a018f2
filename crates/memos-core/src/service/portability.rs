//! A user's data out and back in, losslessly: `memos export` / `memos import` and the API's
//! `export/user` (a user's right to their own data).
//!
//! The format is JSON Lines, one [`ExportRecord`] per line: a header naming the user, then
//! their documents (profiles), memories of every status, the history of each, the chat
//! log, optionally the vectors, and an end line with the counts, so a cut-off file is
//! refused instead of imported in part. Records are the store's own rows, ids and times
//! included: an import gives back exactly what was exported.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::MemoryService;
use crate::error::{Error, NotFoundKind, Result};
use crate::model::*;
use crate::store::{Embedding, Expect, MemoryStore, WriteBatch};

/// The format's name in the header; a reader refuses any other.
pub const EXPORT_FORMAT: &str = "memos-export/1";

/// Rows read per store page while exporting, and written per batch while importing.
const PAGE: usize = 500;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportRecord {
    /// First: what this is.
    Header(ExportHeader),
    /// A profile or other document of the user.
    Doc(Doc),
    /// A memory, in any status (soft-deleted ones too: they keep their history).
    Memory(Memory),
    /// One change in a memory's history.
    History(MemoryChange),
    /// One message of the chat log.
    Message(Message),
    /// A memory's vector under one model (only when asked for).
    Embedding(Embedding),
    /// Last: how many of each came before.
    End(ExportCounts),
}

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The project it was exported from.
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// When (epoch ms).
    pub exported_at: Millis,
    /// Whether vectors are included.
    pub vectors: bool,
}

/// How many records of each kind an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCounts {
    /// Documents.
    pub docs: usize,
    /// Memories.
    pub memories: usize,
    /// History entries.
    pub history: usize,
    /// Messages.
    pub messages: usize,
    /// Vectors.
    pub embeddings: usize,
}

/// Sends every record of `scope` to `out`, in file order; `vectors` adds the vectors. Reads
/// the store only, so it runs beside a serving server. Stops (with an error) when the
/// receiver goes away.
///
/// The store is walked in write order and each row kept when it is the user's: one pass
/// over everything, the same walk `memos migrate` makes, rather than a per-user query per
/// kind of row that the store traits do not have.
pub async fn export_user(
    store: &dyn MemoryStore,
    scope: &Scope,
    vectors: bool,
    out: &mpsc::Sender<ExportRecord>,
) -> Result<ExportCounts> {
    let send = |r: ExportRecord| async move {
        out.send(r)
            .await
            .map_err(|_| Error::Unavailable("the export's reader went away".into()))
    };
    let mut n = ExportCounts::default();
    send(ExportRecord::Header(ExportHeader {
        format: EXPORT_FORMAT.into(),
        project_id: scope.project_id.clone(),
        user_id: scope.user_id.clone(),
        exported_at: now_millis(),
        vectors,
    }))
    .await?;
    let docs = store
        .list_docs(DocSelect {
            project_id: Some(&scope.project_id),
            user_id: Some(&scope.user_id),
            ..Default::default()
        })
        .await?;
    for d in docs {
        n.docs += 1;
        send(ExportRecord::Doc(d)).await?;
    }
    // One walk per kind of row, each a page at a time after the last page's cursor.
    macro_rules! walk {
        ($scan:ident, $variant:ident, $count:ident) => {
            let mut cursor = None;
            loop {
                let (page, next) = store.$scan(cursor, PAGE).await?;
                if page.is_empty() {
                    break;
                }
                for row in page.into_iter().filter(|r| &r.scope == scope) {
                    n.$count += 1;
                    send(ExportRecord::$variant(row)).await?;
                }
                cursor = next;
            }
        };
    }
    walk!(scan_memories, Memory, memories);
    walk!(scan_history, History, history);
    walk!(scan_messages, Message, messages);
    if vectors {
        walk!(scan_embeddings, Embedding, embeddings);
    }
    send(ExportRecord::End(n)).await?;
    Ok(n)
}

/// An export read back and checked whole: nothing is written from a file that is cut off,
/// mixes users or repeats an id.
#[derive(Debug, Default)]
struct Checked {
    docs: Vec<Doc>,
    memories: Vec<Memory>,
    history: Vec<MemoryChange>,
    messages: Vec<Message>,
    embeddings: Vec<Embedding>,
}

impl Checked {
    /// How many records of each kind it holds.
    fn counts(&self) -> ExportCounts {
        ExportCounts {
            docs: self.docs.len(),
            memories: self.memories.len(),
            history: self.history.len(),
            messages: self.messages.len(),
            embeddings: self.embeddings.len(),
        }
    }
}

/// Checks an export and moves it into `project_id`.
fn check(records: Vec<ExportRecord>, project_id: &str) -> Result<(Scope, Checked)> {
    let bad = |why: String| Error::invalid("file", why);
    let mut it = records.into_iter();
    let Some(ExportRecord::Header(h)) = it.next() else {
        return Err(bad("the first line must be the export's header".into()));
    };
    if h.format != EXPORT_FORMAT {
        return Err(bad(format!(
            "format {:?} is not {EXPORT_FORMAT:?}",
            h.format
        )));
    }
    let from = Scope::new(&h.project_id, &h.user_id);
    let to = Scope::new(project_id, &h.user_id);
    let mut c = Checked::default();
    let mut end = None;
    let move_scope = |s: &mut Scope, what: &str| {
        if *s != from {
            return Err(bad(format!(
                "a {what} of another user or project ({}/{}) is in the export of {}/{}",
                s.project_id, s.user_id, from.project_id, from.user_id
            )));
        }
        *s = to.clone();
        Ok(())
    };
    for r in it.by_ref() {
        match r {
            ExportRecord::Header(_) => return Err(bad("a second header".into())),
            ExportRecord::End(n) => {
                end = Some(n);
                break;
            }
            ExportRecord::Doc(mut d) => {
                if d.project_id != from.project_id || d.user_id != from.user_id {
                    return Err(bad(format!("a document of another user: {}", d.id)));
                }
                d.project_id = project_id.to_string();
                c.docs.push(d);
            }
            ExportRecord::Memory(mut m) => {
                move_scope(&mut m.scope, "memory")?;
                c.memories.push(m);
            }
            ExportRecord::History(mut h) => {
                move_scope(&mut h.scope, "history entry")?;
                c.history.push(h);
            }
            ExportRecord::Message(mut m) => {
                move_scope(&mut m.scope, "message")?;
                c.messages.push(m);
            }
            ExportRecord::Embedding(mut e) => {
                move_scope(&mut e.scope, "vector")?;
                c.embeddings.push(e);
            }
        }
    }
    let Some(end) = end else {
        return Err(bad("no end line: the file is cut off".into()));
    };
    if it.next().is_some() {
        return Err(bad("lines after the end line".into()));
    }
    let have = c.counts();
    if have != end {
        return Err(bad(format!(
            "the end line counts {end:?} but the file holds {have:?}"
        )));
    }
    let mut ids = HashSet::new();
    for id in c
        .memories
        .iter()
        .map(|m| &m.id)
        .chain(c.messages.iter().map(|m| &m.id))
    {
        if !ids.insert(id) {
            return Err(bad(format!("id {id} appears twice")));
        }
    }
    let memories: HashSet<&str> = c.memories.iter().map(|m| m.id.as_str()).collect();
    if let Some(e) = c
        .embeddings
        .iter()
        .find(|e| !memories.contains(e.memory_id.as_str()))
    {
        return Err(bad(format!(
            "a vector of memory {}, which the file does not hold",
            e.memory_id
        )));
    }
    Ok((to, c))
}

impl MemoryService {
    /// Sends the user's export to `out` (see [`export_user`]); an unknown user is a
    /// not-found.
    pub async fn export_user(
        &self,
        project_id: &str,
        user_id: &str,
        vectors: bool,
        out: &mpsc::Sender<ExportRecord>,
    ) -> Result<ExportCounts> {
        let scope = Scope::new(project_id, user_id);
        if !self.store.user_exists(&scope).await? {
            return Err(Error::not_found(
                format!("user {user_id}"),
                NotFoundKind::Record,
            ));
        }
        export_user(self.store.as_ref(), &scope, vectors, out).await
    }

    /// Imports an export into `project_id` under the same user and the same ids, searchable
    /// when this returns. The whole file is checked first; the user must hold nothing in
    /// the project yet, and no id may be taken anywhere in the store (each batch expects
    /// its ids absent, checked inside the store's transaction).
    ///
    /// `progress` hears how many records are written so far. Vectors of the loaded model go
    /// into the vector index with their memories; those of other models are kept in the
    /// store for a later switch back, and memories without one wait for the background
    /// embedder as new ones do.
    pub async fn import_user(
        &self,
        project_id: &str,
        records: Vec<ExportRecord>,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<ExportCounts> {
        let (scope, c) = check(records, project_id)?;
        if self.store.user_exists(&scope).await? {
            return Err(Error::Conflict(format!(
                "user {} already holds data in this project; delete it or import elsewhere",
                scope.user_id
            )));
        }
        let counts = c.counts();
        let absent = |ids: Vec<String>| Expect {
            project: project_id.to_string(),
            absent: ids,
            ..Default::default()
        };
        let mut done = 0;
        for page in c.messages.chunks(PAGE) {
            let batch = WriteBatch {
                expect: absent(page.iter().map(|m| m.id.clone()).collect()),
                messages: page.to_vec(),
                ..Default::default()
            };
            self.record(batch).await?;
            done += page.len();
            progress(done);
        }
        let model = self.embedder().map(|e| e.model_id().to_string());
        let (mut loaded, other): (Vec<Embedding>, Vec<Embedding>) = c
            .embeddings
            .into_iter()
            .partition(|e| Some(&e.model) == model.as_ref());
        for page in c.memories.chunks(PAGE) {
            let ids: HashSet<&str> = page.iter().map(|m| m.id.as_str()).collect();
            let (with, rest) = loaded
                .into_iter()
                .partition(|e| ids.contains(e.memory_id.as_str()));
            loaded = rest;
            let batch = WriteBatch {
                expect: absent(page.iter().map(|m| m.id.clone()).collect()),
                upsert_memories: page.to_vec(),
                embeddings: with,
                ..Default::default()
            };
            done += page.len() + batch.embeddings.len();
            self.write(batch, vec![]).await?;
            progress(done);
        }
        // History and other models' vectors change nothing searchable.
        for page in c.history.chunks(PAGE) {
            self.record(WriteBatch {
                history: page.to_vec(),
                ..Default::default()
            })
            .await?;
            done += page.len();
            progress(done);
        }
        for page in other.chunks(PAGE) {
            self.record(WriteBatch {
                embeddings: page.to_vec(),
                ..Default::default()
            })
            .await?;
            done += page.len();
            progress(done);
        }
        if !c.docs.is_empty() {
            done += c.docs.len();
            self.store.put_docs(c.docs).await?;
            progress(done);
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::tests_support::{memory, message};

    fn export_of(scope: &Scope, rows: Vec<ExportRecord>) -> Vec<ExportRecord> {
        let mut n = ExportCounts::default();
        for r in &rows {
            match r {
                ExportRecord::Memory(_) => n.memories += 1,
                ExportRecord::Message(_) => n.messages += 1,
                ExportRecord::History(_) => n.history += 1,
                ExportRecord::Embedding(_) => n.embeddings += 1,
                ExportRecord::Doc(_) => n.docs += 1,
                ExportRecord::Header(_) | ExportRecord::End(_) => {}
            }
        }
        let mut all = vec![ExportRecord::Header(ExportHeader {
            format: EXPORT_FORMAT.into(),
            project_id: scope.project_id.clone(),
            user_id: scope.user_id.clone(),
            exported_at: 1,
            vectors: false,
        })];
        all.extend(rows);
        all.push(ExportRecord::End(n));
        all
    }

    async fn embedded() -> (tempfile::TempDir, Arc<MemoryService>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MemoryStore> =
            Arc::new(crate::store::EmbeddedStore::open(dir.path()).unwrap());
        let svc = MemoryService::start(store, None, None, crate::Config::default())
            .await
            .unwrap();
        (dir, svc)
    }

    async fn export_lines(svc: &MemoryService, project: &str, user: &str) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(16);
        let (done, lines) = tokio::join!(svc.export_user(project, user, true, &tx), async {
            let mut lines = vec![];
            while let Some(r) = rx.recv().await {
                lines.push(serde_json::to_string(&r).unwrap());
                if matches!(r, ExportRecord::End(_)) {
                    break;
                }
            }
            lines
        });
        done.unwrap();
        lines
    }

    fn parse(lines: &[String]) -> Vec<ExportRecord> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The records of an export with their project and export time blanked, for comparing
    /// an export with the export of its import.
    fn comparable(lines: &[String]) -> Vec<ExportRecord> {
        let blank = |s: &mut Scope| s.project_id.clear();
        parse(lines)
            .into_iter()
            .map(|mut r| {
                match &mut r {
                    ExportRecord::Header(h) => {
                        h.project_id.clear();
                        h.exported_at = 0;
                    }
                    ExportRecord::Memory(m) => blank(&mut m.scope),
                    ExportRecord::Message(m) => blank(&mut m.scope),
                    ExportRecord::History(h) => blank(&mut h.scope),
                    ExportRecord::Embedding(e) => blank(&mut e.scope),
                    ExportRecord::Doc(d) => d.project_id.clear(),
                    ExportRecord::End(_) => {}
                }
                r
            })
            .collect()
    }

    #[tokio::test]
    async fn an_export_imports_back_losslessly_and_only_once() {
        use crate::service::{AddInput, NewMessage, SearchInput, UpdateInput};
        let (_a_dir, a) = embedded().await;
        let said = |t: &str| NewMessage {
            role: Role::User,
            content: t.into(),
            chat_time: None,
            name: None,
            message_id: None,
            raw: None,
        };
        let added = a
            .add(
                "p",
                AddInput {
                    user_id: "alice".into(),
                    conversation_id: "c".into(),
                    messages: vec![said("I live in Lisbon."), said("I work as a nurse.")],
                    tags: vec![],
                    info: serde_json::Map::new(),
                    agent_id: None,
                    app_id: None,
                    async_mode: false,
                    knowledgebase_ids: vec![],
                    public: false,
                },
            )
            .await
            .unwrap();
        a.update(
            "p",
            UpdateInput {
                memory_id: added.memory_ids[0].clone(),
                value: Some("I live in Porto.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let lines = export_lines(&a, "p", "alice").await;
        assert!(lines.len() >= 6, "{lines:#?}");

        let (_b_dir, b) = embedded().await;
        let n = b.import_user("q", parse(&lines), &|_| {}).await.unwrap();
        assert_eq!(n.memories, added.memory_ids.len());
        assert!(n.history >= 1 && n.messages == 2, "{n:?}");
        // Exported again from its new home, it is the same data, ids and times included.
        assert_eq!(
            comparable(&export_lines(&b, "q", "alice").await),
            comparable(&lines)
        );
        let hits = b
            .search(
                "q",
                SearchInput {
                    user_id: "alice".into(),
                    query: "Porto".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(hits[0].memory.id, added.memory_ids[0]);
        // Once only: the user holds data now; and another project cannot take the ids.
        let again = b
            .import_user("q", parse(&lines), &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(again, Error::Conflict(_)), "{again:?}");
        let elsewhere = b
            .import_user("r", parse(&lines), &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(elsewhere, Error::Conflict(_)), "{elsewhere:?}");
        assert!(
            !b.store
                .user_exists(&Scope::new("r", "alice"))
                .await
                .unwrap()
        );
        // An unknown user has no export.
        let (tx, _rx) = mpsc::channel(1);
        assert!(matches!(
            b.export_user("q", "nobody", false, &tx).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_good_export_moves_into_the_target_project() {
        let m = memory("alice", "c", "I live in Lisbon.");
        let scope = m.scope.clone();
        let said = message(&scope, "c", "I live in Lisbon.", 1);
        let file = export_of(
            &scope,
            vec![ExportRecord::Memory(m), ExportRecord::Message(said)],
        );
        let (to, c) = check(file, "elsewhere").unwrap();
        assert_eq!(to, Scope::new("elsewhere", "alice"));
        assert_eq!(c.memories[0].scope, to);
        assert_eq!(c.messages[0].scope, to);
    }

    #[test]
    fn a_bad_export_is_refused_whole() {
        let m = memory("alice", "c", "I live in Lisbon.");
        let scope = m.scope.clone();
        let refused = |file: Vec<ExportRecord>, says: &str| {
            let err = check(file, "p").unwrap_err().to_string();
            assert!(err.contains(says), "{err} should say {says}");
        };
        // Cut off: no end line.
        let mut cut = export_of(&scope, vec![ExportRecord::Memory(m.clone())]);
        cut.pop();
        refused(cut, "cut off");
        // Counts that do not match.
        let mut short = export_of(&scope, vec![ExportRecord::Memory(m.clone())]);
        short.remove(1);
        refused(short, "end line counts");
        // Another user's memory inside.
        let bob = memory("bob", "c", "I am Bob.");
        refused(
            export_of(
                &scope,
                vec![ExportRecord::Memory(m.clone()), ExportRecord::Memory(bob)],
            ),
            "another user",
        );
        // The same id twice.
        refused(
            export_of(
                &scope,
                vec![
                    ExportRecord::Memory(m.clone()),
                    ExportRecord::Memory(m.clone()),
                ],
            ),
            "twice",
        );
        // A vector of a memory the file does not hold.
        let stray = Embedding {
            memory_id: "nope".into(),
            scope: scope.clone(),
            model: "m".into(),
            vector: vec![1.0],
        };
        refused(
            export_of(&scope, vec![ExportRecord::Embedding(stray)]),
            "does not hold",
        );
        // No header.
        refused(vec![ExportRecord::Memory(m)], "header");
    }
}
