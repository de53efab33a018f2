//! Each server's copy of the search data of the users it searched lately: their terms
//! ([`UserPostings`]), vectors ([`UserVectors`]) and the fields filters read, in RAM, so
//! both retrievers run in this process as over the embedded store, and the database answers
//! only what changed.
//!
//! Why: searched in SQL, a 100k-memory user cost 25 ms of database time per search (BM25
//! aggregated over every posting of the query's terms, an HNSW walk, and both again for
//! the preference channel), on the cores the servers need too. On the copy each retriever
//! takes about a millisecond, and the API's search at 1 client fell from 15.6 to 10 ms p50.
//!
//! Staying current: every write commits in revision order (it holds the revision row to
//! commit) and logs the memories it touched under its revision (`memos_changes`, filled by
//! triggers, migration 0010). Before a search a copy reads, in one statement and so one
//! snapshot, the latest revision and the current state of every memory logged since the
//! revision it holds. A search that began at `since` may use a copy whose last catch-up
//! began at or after `since`, so a write acknowledged before a search began (on any
//! server) is always in it. A copy older than the pruned part of the log loads again whole.
//!
//! Bounded: copies live in a moka cache weighed by bytes (the vectors' share of
//! `search.cache_mb`); a user too big for half of it is searched in SQL instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::types::{FromSql, Type};

use super::{Params, PostgresStore, Prepared, pg, pg_filter, refs};
use crate::error::Result;
use crate::filter::{Condition, Fields, Filter, Logic};
use crate::model::{MemoryType, Millis, Scope};
use crate::search::Allowed;
use crate::search::postings::UserPostings;
use crate::search::vector::{TRIM_AFTER_ROWS, UserVectors, release_freed_memory};
use crate::store::SearchCopies;

/// A filter on `info` (the copies do not keep it) reads the ids it allows from the
/// database; one that lets more through than this is searched in SQL instead.
pub(super) const ALLOWED_IDS_MAX: usize = 20_000;

/// How long a user found too big for the budget is searched in SQL before trying again.
const TOO_BIG_FOR: Duration = Duration::from_secs(600);

/// The copies of one server.
pub(super) struct Mirrors {
    users: moka::sync::Cache<Scope, Arc<Mirror>>,
    /// Users whose copy would not fit, searched in SQL for a while.
    too_big: moka::sync::Cache<Scope, ()>,
    /// The model whose vectors are copied.
    model: Option<String>,
    budget: u64,
    exact_scan_rows: usize,
}

/// One user's copy.
#[derive(Default)]
pub(super) struct Mirror {
    /// Held while catching up, so concurrent searches of a user catch up once.
    caught_up: tokio::sync::Mutex<CaughtUp>,
    pub(super) data: RwLock<UserCopy>,
}

/// A filter's decision for BM25 lists the ids it allows when one of its conditions names
/// under this share of the user's memories; beyond it, the decision is a test of each id.
/// (The share under which the vector search visits only the listed rows.)
const LISTED_SHARE: usize = 8;

/// A filter as a copy decides it.
pub(super) enum Decided<'a> {
    /// The ids it allows.
    Ids(HashSet<String>),
    /// Whether it allows an id, from the fields the copy keeps.
    Test(Box<dyn Fn(&str) -> bool + Sync + 'a>),
}

impl Decided<'_> {
    /// The decision as the retrievers take it.
    pub(super) fn as_allowed(&self) -> Allowed<'_> {
        match self {
            Decided::Ids(ids) => Allowed::Ids(ids),
            Decided::Test(test) => Allowed::Test(test.as_ref()),
        }
    }
}

/// How current a copy is.
#[derive(Default)]
struct CaughtUp {
    /// The revision it holds; `None` before its first load.
    revision: Option<i64>,
    /// When its last catch-up began.
    at: Option<Instant>,
}

/// A user's search data.
#[derive(Default)]
pub(super) struct UserCopy {
    pub(super) lexical: UserPostings,
    pub(super) vectors: UserVectors,
    /// Per memory, what filters read but `info`, so the common filters (the preference
    /// channel's tag, the tool search's type) are decided here without asking the
    /// database.
    fields: HashMap<Box<str>, Kept>,
    fields_bytes: usize,
    /// The memories of each tag and of each type: a filter that requires one starts from
    /// those few instead of every memory.
    tagged: HashMap<String, HashSet<Box<str>>>,
    typed: HashMap<MemoryType, HashSet<Box<str>>>,
}

/// A memory's fields that filters read ([`Fields`] without `info`).
struct Kept {
    agent_id: Option<Box<str>>,
    app_id: Option<Box<str>>,
    /// Lower-cased by the database (`memos_tags`), as its own filters compare them.
    tags: Vec<String>,
    memory_type: MemoryType,
    create_time: Millis,
    update_time: Millis,
    memory_time: Option<Millis>,
}

impl Kept {
    fn bytes(&self) -> usize {
        let text = |s: &Option<Box<str>>| s.as_ref().map_or(0, |s| s.len());
        // The tag and type indexes hold the id again per tag and once for the type.
        96 + text(&self.agent_id)
            + text(&self.app_id)
            + self.tags.iter().map(|t| t.len() + 24 + 64).sum::<usize>()
            + 64
    }
}

impl UserCopy {
    fn bytes(&self) -> usize {
        self.lexical.bytes() + self.vectors.bytes() + self.fields_bytes
    }

    /// How this copy decides `filter` on the kept fields; `None` for a filter on `info`,
    /// which only the database holds. The ids it allows when one of its conditions names
    /// few memories (a tag, a rare type), or for a search that `lists` (the vector search,
    /// which visits only the listed rows when they are few: an agent's memories among
    /// many); else a test of each id, which BM25 asks of its best rows only.
    pub(super) fn allowed<'a>(&'a self, filter: &'a Filter, lists: bool) -> Option<Decided<'a>> {
        if filter.reads_info() {
            return None;
        }
        let matches = move |k: &Kept| {
            filter.matches_fields(&Fields {
                agent_id: k.agent_id.as_deref(),
                app_id: k.app_id.as_deref(),
                tags: &k.tags,
                tags_lowered: true,
                memory_type: k.memory_type,
                create_time: k.create_time,
                update_time: k.update_time,
                memory_time: k.memory_time,
                info: None,
            })
        };
        // Every condition must hold: start from the fewest memories one of them names.
        let empty = HashSet::new();
        let start = (filter.logic == Logic::And)
            .then(|| {
                filter
                    .conditions
                    .iter()
                    .filter_map(|c| match c {
                        Condition::TagContains(t) => Some(self.tagged.get(t).unwrap_or(&empty)),
                        Condition::MemoryType(t) => Some(self.typed.get(t).unwrap_or(&empty)),
                        Condition::AgentId(_)
                        | Condition::AppId(_)
                        | Condition::Time { .. }
                        | Condition::Info { .. } => None,
                    })
                    .min_by_key(|ids| ids.len())
            })
            .flatten();
        let few = |ids: &HashSet<Box<str>>| ids.len() < (self.fields.len() / LISTED_SHARE).max(64);
        Some(match start {
            Some(ids) if lists || few(ids) => Decided::Ids(
                ids.iter()
                    .filter(|id| self.fields.get(*id).is_some_and(matches))
                    .map(|id| id.to_string())
                    .collect(),
            ),
            None if lists => Decided::Ids(
                self.fields
                    .iter()
                    .filter(|(_, k)| matches(k))
                    .map(|(id, _)| id.to_string())
                    .collect(),
            ),
            // Half of a big user's memories (the profile items an add reconciles against):
            // a set of them cost more than the search (18% of the servers' CPU under adds).
            _ => Decided::Test(Box::new(move |id: &str| {
                self.fields.get(id).is_some_and(matches)
            })),
        })
    }

    /// Keeps a memory's fields (`None`: forgets them).
    fn keep(&mut self, id: &str, kept: Option<Kept>) {
        if let Some(old) = self.fields.remove(id) {
            self.fields_bytes -= old.bytes() + id.len();
            for t in &old.tags {
                if let Some(ids) = self.tagged.get_mut(t) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.tagged.remove(t);
                    }
                }
            }
            if let Some(ids) = self.typed.get_mut(&old.memory_type) {
                ids.remove(id);
            }
        }
        if let Some(k) = kept {
            self.fields_bytes += k.bytes() + id.len();
            for t in &k.tags {
                self.tagged.entry(t.clone()).or_default().insert(id.into());
            }
            self.typed
                .entry(k.memory_type)
                .or_default()
                .insert(id.into());
            self.fields.insert(id.into(), k);
        }
    }

    /// Takes in a memory's current state: `None` when it is gone (deleted, or never
    /// current), else its row ([`MIRROR_COLUMNS`]).
    fn apply(&mut self, id: &str, row: Option<&MirrorRow>) {
        match row {
            None => {
                self.lexical.remove(id);
                self.vectors.delete(id);
                self.keep(id, None);
            }
            Some(r) => {
                self.lexical.upsert(id, r.time, r.archived_at, &r.terms);
                match &r.vector {
                    Some(v) => self.vectors.upsert_as(id, r.time, r.archived_at, &v.0),
                    None => self.vectors.delete(id),
                }
                self.keep(id, r.kept());
            }
        }
    }
}

/// A memory as a copy holds it.
struct MirrorRow {
    time: Millis,
    archived_at: Option<Millis>,
    terms: Vec<String>,
    vector: Option<PgVector>,
    tags: Vec<String>,
    memory_type: String,
    agent_id: Option<String>,
    app_id: Option<String>,
    create_time: Millis,
    update_time: Millis,
    memory_time: Option<Millis>,
}

/// What a copy reads of a memory `m` (current ones only) and its vector `e`.
const MIRROR_COLUMNS: &str = "coalesce(m.memory_time, m.create_time), \
    CASE WHEN m.status = 'archived' THEN m.update_time END, coalesce(m.terms, '{}'), e.vector, \
    memos_tags(m.tags), m.memory_type, m.agent_id, m.app_id, m.create_time, m.update_time, \
    m.memory_time";

impl MirrorRow {
    /// From [`MIRROR_COLUMNS`] starting at column `at`.
    fn from(r: &tokio_postgres::Row, at: usize) -> Self {
        Self {
            time: r.get(at),
            archived_at: r.get(at + 1),
            terms: r.get(at + 2),
            vector: r.get(at + 3),
            tags: r.get(at + 4),
            memory_type: r.get(at + 5),
            agent_id: r.get(at + 6),
            app_id: r.get(at + 7),
            create_time: r.get(at + 8),
            update_time: r.get(at + 9),
            memory_time: r.get(at + 10),
        }
    }

    /// What filters read of it; `None` for a type this version does not know (no filter
    /// can allow a memory it cannot read).
    fn kept(&self) -> Option<Kept> {
        Some(Kept {
            agent_id: self.agent_id.as_deref().map(Into::into),
            app_id: self.app_id.as_deref().map(Into::into),
            tags: self.tags.clone(),
            memory_type: MemoryType::parse(&self.memory_type)?,
            create_time: self.create_time,
            update_time: self.update_time,
            memory_time: self.memory_time,
        })
    }
}

/// A pgvector `vector` in its binary form: dimensions (int16), an unused int16, then the
/// values as big-endian float4. Read as binary, a 100k-memory user's vectors load in a
/// fraction of the time their text takes to parse.
pub(super) struct PgVector(pub(super) Vec<f32>);

impl<'a> FromSql<'a> for PgVector {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let (Some(head), Some(body)) = (raw.get(..4), raw.get(4..)) else {
            return Err("a vector shorter than its header".into());
        };
        let dim = usize::from(u16::from_be_bytes([head[0], head[1]]));
        if body.len() != dim * 4 {
            return Err(format!("a vector of {dim} dimensions in {} bytes", body.len()).into());
        }
        Ok(PgVector(
            body.chunks_exact(4)
                .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}

impl Mirrors {
    /// Copies within `copies.bytes`, with the vectors of `model`.
    pub(super) fn new(model: Option<&str>, copies: SearchCopies) -> Self {
        Self {
            users: moka::sync::Cache::builder()
                .max_capacity(copies.bytes)
                .weigher(|_, m: &Arc<Mirror>| {
                    let bytes = m.data.read().unwrap_or_else(|e| e.into_inner()).bytes();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
            too_big: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TOO_BIG_FOR)
                .build(),
            model: model.map(str::to_string),
            budget: copies.bytes,
            exact_scan_rows: copies.exact_scan_rows,
        }
    }

    /// Whether dense searches of `model` can use the copies.
    pub(super) fn has_vectors_of(&self, model: &str) -> bool {
        self.model.as_deref() == Some(model)
    }

    /// `search.exact_scan_rows` for the copies' vectors.
    pub(super) fn exact_scan_rows(&self) -> usize {
        self.exact_scan_rows
    }

    /// Whether a copy of `scope` is held now (caught up or not).
    pub(super) fn holds(&self, scope: &Scope) -> bool {
        self.users.contains_key(scope)
    }

    /// Bytes the copies hold now.
    pub(super) fn bytes(&self) -> u64 {
        self.users.run_pending_tasks();
        self.users.weighted_size()
    }
}

impl PostgresStore {
    /// `scope`'s copy, caught up with every write committed before `since`; `None` when
    /// this store keeps no copies or the user is too big for them (search in SQL).
    pub(super) async fn mirror(
        &self,
        scope: &Scope,
        since: Instant,
    ) -> Result<Option<Arc<Mirror>>> {
        let Some(mirrors) = self.mirrors.get() else {
            return Ok(None);
        };
        if mirrors.too_big.contains_key(scope) {
            return Ok(None);
        }
        let m = mirrors
            .users
            .get_with_by_ref(scope, || Arc::new(Mirror::default()));
        let mut caught = m.caught_up.lock().await;
        if caught.at.is_some_and(|at| at >= since) {
            drop(caught);
            return Ok(Some(m));
        }
        let began = Instant::now();
        let model = mirrors.model.as_deref().unwrap_or("");
        let caught_up = match caught.revision {
            Some(rev) => self.catch_up(&m, scope, model, rev).await?,
            None => None,
        };
        let (revision, changed) = match caught_up {
            Some(done) => done,
            None => {
                let (rev, copy) = self.load_copy(scope, model).await?;
                *m.data.write().unwrap_or_else(|e| e.into_inner()) = copy;
                (rev, true)
            }
        };
        caught.revision = Some(revision);
        caught.at = Some(began);
        drop(caught);
        if !changed {
            return Ok(Some(m));
        }
        let bytes = m.data.read().unwrap_or_else(|e| e.into_inner()).bytes() as u64;
        if bytes > mirrors.budget / 2 {
            tracing::info!(
                user = %scope.user_id,
                mb = bytes >> 20,
                "a user too big for search.cache_mb is searched in the database"
            );
            mirrors.users.invalidate(scope);
            mirrors.too_big.insert(scope.clone(), ());
            return Ok(None);
        }
        // Inserting again makes moka weigh the copy as it is now.
        mirrors.users.insert(scope.clone(), m.clone());
        Ok(Some(m))
    }

    /// Applies the changes logged after `revision` to `m`; the revision it then holds and
    /// whether anything changed, or `None` when the log no longer reaches back that far
    /// (load it whole).
    async fn catch_up(
        &self,
        m: &Mirror,
        scope: &Scope,
        model: &str,
        revision: i64,
    ) -> Result<Option<(i64, bool)>> {
        let c = self.search_client().await?;
        // One statement, one snapshot: the revision read and the changes agree.
        let sql = format!(
            "WITH meta AS (SELECT max(value) FILTER (WHERE key = 'revision') AS rev, \
                    coalesce(max(value) FILTER (WHERE key = 'changes_floor'), 0) AS floor \
                    FROM memos_meta WHERE key IN ('revision', 'changes_floor')), \
             ch AS (SELECT DISTINCT memory_id FROM memos_changes \
                    WHERE project_id = $1 AND user_id = $2 AND revision > $3) \
             SELECT meta.rev, meta.floor, x.* FROM meta LEFT JOIN \
             (SELECT ch.memory_id, coalesce(m.project_id = $1 AND m.user_id = $2 \
                     AND m.status IN ('activated', 'archived'), false), {MIRROR_COLUMNS} FROM ch \
              LEFT JOIN memories m ON m.id = ch.memory_id \
              LEFT JOIN embeddings e ON e.memory_id = ch.memory_id AND e.model = $4) x ON true"
        );
        // Joined by id alone, so each change is one lookup in the unique index whatever
        // the planner thinks of the user's size; the scope is checked on the row.
        let stmt = c.prepare_cached(&sql).await.map_err(pg)?;
        let rows = c
            .query(
                &stmt,
                &[&scope.project_id, &scope.user_id, &revision, &model],
            )
            .await
            .map_err(pg)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let (now, floor): (i64, i64) = (first.get(0), first.get(1));
        if floor > revision {
            return Ok(None);
        }
        let changed: Vec<(String, Option<MirrorRow>)> = rows
            .iter()
            .filter_map(|r| {
                let id: Option<String> = r.get(2);
                id.map(|id| (id, r.get::<_, bool>(3).then(|| MirrorRow::from(r, 4))))
            })
            .collect();
        if !changed.is_empty() {
            let mut copy = m.data.write().unwrap_or_else(|e| e.into_inner());
            for (id, row) in &changed {
                copy.apply(id, row.as_ref());
            }
        }
        Ok(Some((now.max(revision), !changed.is_empty())))
    }

    /// A user's copy read whole, with the revision it holds.
    async fn load_copy(&self, scope: &Scope, model: &str) -> Result<(i64, UserCopy)> {
        let mut c = self.search_client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let revision: i64 = tx
            .query_one(
                &tx.prepared("SELECT value FROM memos_meta WHERE key = 'revision'")
                    .await?,
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        // Streamed: each row goes into the copy as it arrives, so a big user's load never
        // holds all its rows (1.5 KB of floats each) at once.
        let rows = tx
            .query_raw(
                &format!(
                    "SELECT m.id, {MIRROR_COLUMNS} FROM memories m \
                     LEFT JOIN embeddings e ON e.memory_id = m.id AND e.model = $3 \
                     WHERE m.project_id = $1 AND m.user_id = $2 \
                     AND m.status IN ('activated', 'archived') ORDER BY m.seq"
                ),
                [&scope.project_id, &scope.user_id, &model.to_string()],
            )
            .await
            .map_err(pg)?;
        let mut rows = std::pin::pin!(rows);
        let mut copy = UserCopy::default();
        let mut loaded = 0usize;
        while let Some(r) = rows.next().await {
            let r = r.map_err(pg)?;
            let id: &str = r.get(0);
            let row = MirrorRow::from(&r, 1);
            copy.lexical
                .upsert(id, row.time, row.archived_at, &row.terms);
            if let Some(v) = &row.vector {
                copy.vectors.load_row(id, row.time, row.archived_at, &v.0);
            }
            copy.keep(id, row.kept());
            loaded += 1;
        }
        tx.commit().await.map_err(pg)?;
        copy.vectors.finish_load();
        if loaded >= TRIM_AFTER_ROWS {
            release_freed_memory();
        }
        Ok((revision, copy))
    }

    /// The ids of `scope`'s current memories that `filter` allows; `None` when more than
    /// [`ALLOWED_IDS_MAX`] do (then the search runs in SQL).
    pub(super) async fn allowed_ids(
        &self,
        scope: &Scope,
        filter: &Filter,
    ) -> Result<Option<HashSet<String>>> {
        let c = self.search_client().await?;
        let mut params: Params = vec![
            Box::new(scope.project_id.clone()),
            Box::new(scope.user_id.clone()),
            Box::new((ALLOWED_IDS_MAX + 1) as i64),
        ];
        let cond = pg_filter(filter, "m", &mut params);
        // Cached per connection: the text depends on the filter's shape, not its values.
        let stmt = c
            .prepare_cached(&format!(
                "SELECT m.id FROM memories m WHERE m.project_id = $1 AND m.user_id = $2 \
                 AND m.status IN ('activated', 'archived') AND {cond} LIMIT $3"
            ))
            .await
            .map_err(pg)?;
        let rows = c.query(&stmt, &refs(&params)).await.map_err(pg)?;
        Ok((rows.len() <= ALLOWED_IDS_MAX).then(|| rows.iter().map(|r| r.get(0)).collect()))
    }
}
