//! The store's own search, so every server sees what every other wrote: BM25 over the
//! terms memos' tokenizer stored with each memory (document statistics kept by triggers),
//! and pgvector's HNSW index over each model's vectors. Both apply "current at time t"
//! ([`current_sql`]) and the request's filter inside the query, so a filtered search
//! still fills its limit.
//!
//! Once [`StoreSearch::prepare`] allows copies in RAM, both retrievers run over the
//! user's copy ([`super::mirror`]) instead, with the database's statistics (idf, average
//! length) read per query and a filter's allowed ids read from the database; the SQL
//! below remains for users too big for the budget and filters that allow too many.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use std::collections::HashSet;

use super::mirror::{Decided, Mirrors, UserCopy};
use super::{Params, PostgresStore, pg, pg_filter, refs, vector_text};
use crate::error::Result;
use crate::filter::Filter;
use crate::model::Scope;
use crate::search::{Candidate, TimeRange};
use crate::store::{SearchCopies, StoreSearch};

/// The parameters every search starts with (`$1` project, `$2` user, `$3` the query, `$4`
/// the limit) and its condition over `memories` as `m`: current at `time.to`, inside
/// `time`, passing `filter`.
fn search_conditions(
    scope: &Scope,
    query: Box<dyn ToSql + Sync + Send>,
    time: TimeRange,
    filter: Option<&Filter>,
    limit: usize,
) -> (String, Params) {
    let mut params: Params = vec![
        Box::new(scope.project_id.clone()),
        Box::new(scope.user_id.clone()),
        query,
        Box::new(limit as i64),
    ];
    let mut cond = current_sql(time, &mut params);
    if let Some(f) = filter {
        cond.push_str(" AND ");
        cond.push_str(&pg_filter(f, "m", &mut params));
    }
    (cond, params)
}

/// The SQL condition "current at `time.to`, inside `time`" over `memories` as `m`:
/// [`crate::search::current_at`] in SQL.
fn current_sql(time: TimeRange, params: &mut Params) -> String {
    let mut cond = match time.to {
        None => "m.status = 'activated'".to_string(),
        Some(t) => {
            params.push(Box::new(t));
            format!(
                "(m.status = 'activated' OR (m.status = 'archived' AND m.update_time > ${}))",
                params.len()
            )
        }
    };
    if let Some(lo) = time.from {
        params.push(Box::new(lo));
        cond.push_str(&format!(
            " AND coalesce(m.memory_time, m.create_time) >= ${}",
            params.len()
        ));
    }
    if let Some(hi) = time.to {
        params.push(Box::new(hi));
        cond.push_str(&format!(
            " AND coalesce(m.memory_time, m.create_time) <= ${}",
            params.len()
        ));
    }
    cond
}

/// The name of the HNSW index over one model's vectors.
fn vector_index_name(model: &str) -> String {
    // FNV-1a: stable across builds (every server must arrive at the same name), SQL-safe.
    let h = model.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("embeddings_hnsw_{h:016x}")
}

/// A string as an SQL literal (DDL takes no parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// BM25 constants, tantivy's, so both backends rank alike.
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The statistics BM25 needs as tantivy computes them (over every memory of the database,
/// as tantivy's cover its whole index): the number of documents `n` and of terms `total`.
/// (Macros, so [`STATS`], [`IDF`] and [`AVG_AND_IDF`] are put together from one text at
/// compile time.)
macro_rules! stats_sql {
    () => {
        "SELECT greatest(max(value) FILTER (WHERE key = 'docs'), 1)::float8 AS n, \
         greatest(max(value) FILTER (WHERE key = 'doc_terms'), 1)::float8 AS total \
         FROM memos_meta WHERE key IN ('docs', 'doc_terms')"
    };
}

/// A term's idf from its document frequency `d.df`, given `s` ([`STATS`]).
macro_rules! idf_sql {
    () => {
        "ln(1 + (s.n - least(coalesce(d.df, 0), s.n) + 0.5) / (least(coalesce(d.df, 0), s.n) + 0.5))"
    };
}

/// [`stats_sql`].
const STATS: &str = stats_sql!();

/// Each query term of `$3` with its idf, given `s` ([`STATS`]).
const IDF: &str = concat!(
    "SELECT t.term, ",
    idf_sql!(),
    " AS idf FROM unnest($3::text[]) AS t(term) CROSS JOIN s \
     LEFT JOIN memos_term_df d ON d.term = t.term"
);

/// The average document length and each term's idf (in the order of `$1`), as [`STATS`]
/// and [`IDF`] compute them: what a copy in RAM needs from the database to score BM25.
const AVG_AND_IDF: &str = concat!(
    "WITH s AS (",
    stats_sql!(),
    ") SELECT (SELECT total / n FROM s), array(SELECT ",
    idf_sql!(),
    " FROM unnest($1::text[]) WITH ORDINALITY AS t(term, ord) CROSS JOIN s \
     LEFT JOIN memos_term_df d ON d.term = t.term ORDER BY t.ord)"
);

/// The BM25 statistics of a request's query terms, keyed by the request's start (the
/// `since` its searches share) and the terms: a search request runs the memory and the
/// preference searches at once, with the same terms, and both used to read them. Another
/// request never shares an entry, so what it reads is as fresh as before; entries expire
/// after a few seconds, long after their request ended.
pub(super) type RequestStats =
    moka::sync::Cache<(Instant, Vec<String>), Arc<tokio::sync::OnceCell<Arc<(f64, Vec<f64>)>>>>;

/// An empty [`RequestStats`].
pub(super) fn request_stats() -> RequestStats {
    moka::sync::Cache::builder()
        .max_capacity(4_096)
        .time_to_live(std::time::Duration::from_secs(5))
        .build()
}

/// Lexical candidates from rows of (id, score, sum of the query's idf, ...): the relevance
/// is the score over the most the query's terms could give.
fn candidates(rows: &[tokio_postgres::Row]) -> Vec<Candidate> {
    rows.iter()
        .map(|r| Candidate::lexical(r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[async_trait]
impl StoreSearch for PostgresStore {
    async fn lexical(
        &self,
        scope: &Scope,
        terms: &[String],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: Instant,
    ) -> Result<Vec<Candidate>> {
        if terms.is_empty() || limit == 0 {
            return Ok(vec![]);
        }
        if let Some(found) = self
            .lexical_in_copy(scope, terms, filter, time, limit, since)
            .await?
        {
            return Ok(found);
        }
        let c = self.search_client().await?;
        // The common search (current memories, no filter, no date window) ranks from the
        // postings table alone and checks status on the best rows only.
        if filter.is_none() && time.from.is_none() && time.to.is_none() {
            let wide = limit.saturating_mul(4).saturating_add(50);
            let sql = format!(
                "WITH s AS ({STATS}), q AS ({IDF}), \
                 top AS (SELECT p.seq, sum(q.idf * p.tf * {k1p1} / (p.tf + {K1} * ({omb} + {B} \
                        * p.len / (SELECT total / n FROM s))))::float4 AS score \
                        FROM q JOIN memos_postings p ON p.project_id = $1 AND p.user_id = $2 \
                        AND p.term = q.term \
                        GROUP BY p.seq ORDER BY score DESC LIMIT $5) \
                 SELECT m.id, top.score, (SELECT sum(idf) FROM q)::float4, \
                        (SELECT count(*) FROM top) \
                 FROM top JOIN memories m ON m.seq = top.seq \
                 WHERE m.status = 'activated' ORDER BY top.score DESC, m.id LIMIT $4",
                k1p1 = K1 + 1.0,
                omb = 1.0 - B,
            );
            // Searches in SQL stay unprepared: planned for each user's size every time
            // (a generic plan could scan a big user whole or walk HNSW for a small one).
            let rows = c
                .query(
                    &sql,
                    &[
                        &scope.project_id,
                        &scope.user_id,
                        &terms,
                        &(limit as i64),
                        &(wide as i64),
                    ],
                )
                .await
                .map_err(pg)?;
            // Exact unless the best `wide` rows held fewer than `limit` current ones while
            // more rows matched (a user whose best matches were mostly archived or
            // deleted): then the scan below.
            let full = rows
                .first()
                .is_some_and(|r| r.get::<_, i64>(3) == wide as i64);
            if rows.len() >= limit || !full {
                return Ok(candidates(&rows));
            }
        }
        let (cond, params) =
            search_conditions(scope, Box::new(terms.to_vec()), time, filter, limit);
        // idf and length normalisation as tantivy computes them (over every memory of the
        // database, as tantivy's statistics cover its whole index); a term's frequency in a
        // memory is the count of its positions in the term array.
        let sql = format!(
            "WITH s AS ({STATS}), q AS ({IDF}), \
             c AS (SELECT m.id, m.terms, cardinality(m.terms) AS len FROM memories m \
                   WHERE m.project_id = $1 AND m.user_id = $2 AND m.terms && $3::text[] AND {cond}) \
             SELECT c.id, sum(q.idf * x.tf * {k1p1} / (x.tf + {K1} * ({omb} + {B} * c.len \
                    / (SELECT total / n FROM s))))::float4 AS score, \
                    (SELECT sum(idf) FROM q)::float4 \
             FROM c CROSS JOIN q \
             CROSS JOIN LATERAL (SELECT cardinality(array_positions(c.terms, q.term))::float8 AS tf) x \
             WHERE x.tf > 0 \
             GROUP BY c.id ORDER BY score DESC, c.id LIMIT $4",
            k1p1 = K1 + 1.0,
            omb = 1.0 - B,
        );
        let rows = c.query(&sql, &refs(&params)).await.map_err(pg)?;
        Ok(candidates(&rows))
    }

    async fn prepare(&self, vectors: Option<(&str, usize)>, copies: SearchCopies) -> Result<()> {
        if copies.bytes > 0 {
            // A second call keeps the first's copies.
            let _ = self.mirrors.set(Mirrors::new(vectors.map(|v| v.0), copies));
        }
        let Some((model, dim)) = vectors else {
            return Ok(());
        };
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg)?;
        // Concurrent starts of several servers take turns; the index is built once. The
        // build is many times faster when the graph fits in maintenance memory.
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(7235502); SET LOCAL maintenance_work_mem = '{mb}MB'; \
             SET LOCAL statement_timeout = 0; \
             CREATE INDEX IF NOT EXISTS {name} ON embeddings \
             USING hnsw ((vector::vector({dim})) vector_cosine_ops) WHERE model = {model}",
            name = vector_index_name(model),
            model = literal(model),
            mb = self.index_memory_mb,
        ))
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn dense(
        &self,
        scope: &Scope,
        model: &str,
        query: &[f32],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: Instant,
    ) -> Result<Vec<(String, f32)>> {
        if limit == 0 || query.is_empty() {
            return Ok(vec![]);
        }
        if let Some(found) = self
            .dense_in_copy(scope, model, query, filter, time, limit, since)
            .await?
        {
            return Ok(found);
        }
        let dim = query.len();
        let mut c = self.search_client().await?;
        let (cond, params) =
            search_conditions(scope, Box::new(vector_text(query)), time, filter, limit);
        // The model is a literal so the planner can match the partial HNSW index. The
        // index is shared by every user: iterative scans keep walking the graph until
        // enough of this user's memories pass the conditions; for a small user the planner
        // scans its rows exactly instead.
        let sql = format!(
            "SELECT e.memory_id, (1 - (e.vector::vector({dim}) <=> $3::text::vector({dim})))::float4 \
             FROM embeddings e JOIN memories m ON m.id = e.memory_id \
             WHERE e.model = {model} AND e.project_id = $1 AND e.user_id = $2 AND {cond} \
             ORDER BY e.vector::vector({dim}) <=> $3::text::vector({dim}) LIMIT $4",
            model = literal(model),
        );
        let tx = c.transaction().await.map_err(pg)?;
        tx.batch_execute(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 100",
        )
        .await
        .map_err(pg)?;
        let rows = tx.query(&sql, &refs(&params)).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let mut out: Vec<(String, f32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // relaxed_order may return a near neighbour slightly out of place.
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(out)
    }

    fn copies_bytes(&self) -> Option<u64> {
        self.mirrors.get().map(Mirrors::bytes)
    }

    async fn matching_ids(
        &self,
        scope: &Scope,
        filter: &Filter,
        cap: usize,
        since: Instant,
    ) -> Result<Option<Vec<String>>> {
        // Only a copy already held: loading a user whole for one list would cost more than
        // the list.
        if !self.mirrors.get().is_some_and(|m| m.holds(scope)) {
            return Ok(None);
        }
        let Some(copy) = self.mirror(scope, since).await? else {
            return Ok(None);
        };
        let data = copy.data.read().unwrap_or_else(|e| e.into_inner());
        Ok(match data.allowed(filter, true) {
            Some(Decided::Ids(ids)) if ids.len() <= cap => Some(ids.into_iter().collect()),
            _ => None,
        })
    }
}

impl PostgresStore {
    /// [`StoreSearch::lexical`] over the user's copy in RAM; `None` when there is none to
    /// use (no copies kept, a user too big for them, a filter allowing too many).
    async fn lexical_in_copy(
        &self,
        scope: &Scope,
        terms: &[String],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: Instant,
    ) -> Result<Option<Vec<Candidate>>> {
        if self.mirrors.get().is_none() {
            return Ok(None);
        }
        // The statistics come from the database meanwhile, once per request and terms:
        // a request's memory and preference searches ask for the same.
        let stats = async {
            let cell = self
                .stats
                .get_with((since, terms.to_vec()), Default::default);
            cell.get_or_try_init(|| async {
                let c = self.search_client().await?;
                let stmt = c.prepare_cached(AVG_AND_IDF).await.map_err(pg)?;
                let row = c.query_one(&stmt, &[&terms]).await.map_err(pg)?;
                Ok::<_, crate::Error>(Arc::new((row.get::<_, f64>(0), row.get::<_, Vec<f64>>(1))))
            })
            .await
            .cloned()
        };
        let (copy, stats) = tokio::try_join!(self.mirror(scope, since), stats)?;
        let Some(copy) = copy else {
            return Ok(None);
        };
        let Some(from_db) = self.info_ids(scope, filter).await? else {
            return Ok(None);
        };
        let (avg, idf) = &*stats;
        let query: Vec<(&str, f64)> = terms
            .iter()
            .map(String::as_str)
            .zip(idf.iter().copied())
            .collect();
        let data = copy.data.read().unwrap_or_else(|e| e.into_inner());
        let Some(decided) = decide(&data, filter, from_db, false) else {
            return Ok(None);
        };
        Ok(Some(data.lexical.search(
            &query,
            *avg,
            time,
            decided.as_ref().map(Decided::as_allowed),
            limit,
        )))
    }

    /// For a filter on `info`, which only the database holds, the ids it allows there
    /// (`Some(Some(ids))`), or `None` when more than [`super::mirror::ALLOWED_IDS_MAX`] do
    /// (search in SQL); `Some(None)` for any other filter, which the copy decides itself.
    async fn info_ids(
        &self,
        scope: &Scope,
        filter: Option<&Filter>,
    ) -> Result<Option<Option<HashSet<String>>>> {
        Ok(match filter {
            Some(f) if f.reads_info() => self.allowed_ids(scope, f).await?.map(Some),
            _ => Some(None),
        })
    }

    /// [`StoreSearch::dense`] over the user's copy in RAM; `None` as for
    /// [`Self::lexical_in_copy`], or when the copies hold another model's vectors.
    #[allow(clippy::too_many_arguments)]
    async fn dense_in_copy(
        &self,
        scope: &Scope,
        model: &str,
        query: &[f32],
        filter: Option<&Filter>,
        time: TimeRange,
        limit: usize,
        since: Instant,
    ) -> Result<Option<Vec<(String, f32)>>> {
        let Some(mirrors) = self.mirrors.get().filter(|m| m.has_vectors_of(model)) else {
            return Ok(None);
        };
        let Some(copy) = self.mirror(scope, since).await? else {
            return Ok(None);
        };
        let Some(from_db) = self.info_ids(scope, filter).await? else {
            return Ok(None);
        };
        let data = copy.data.read().unwrap_or_else(|e| e.into_inner());
        let Some(decided) = decide(&data, filter, from_db, true) else {
            return Ok(None);
        };
        Ok(Some(data.vectors.search_with(
            query,
            limit,
            time,
            decided.as_ref().map(Decided::as_allowed),
            mirrors.exact_scan_rows(),
        )))
    }
}

/// `filter` as the copy `data` decides it (`Some(None)` without one), with the ids read
/// from the database for a filter on `info`, for a search that `lists` or not
/// ([`UserCopy::allowed`]); `None` should the copy be unable to.
fn decide<'a>(
    data: &'a UserCopy,
    filter: Option<&'a Filter>,
    from_db: Option<HashSet<String>>,
    lists: bool,
) -> Option<Option<Decided<'a>>> {
    match (filter, from_db) {
        (None, _) => Some(None),
        (Some(_), Some(ids)) => Some(Some(Decided::Ids(ids))),
        (Some(f), None) => data.allowed(f, lists).map(Some),
    }
}
