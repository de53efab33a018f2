//! What the two SQL stores share: the column lists, one row mapper per table, and filters
//! translated to SQL in either dialect. Each store keeps only what really differs: its
//! driver, its schema and migrations, how it runs a write, and how it searches.
//!
//! The mappers read columns by position through [`SqlRow`], which each store implements
//! over its driver's row; a value the domain cannot take (an unknown status, JSON that does
//! not parse) is [`Error::Corrupt`], a 500 with the detail logged, on both stores alike.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::{Condition, Filter, Logic};
use crate::model::*;

/// `memories`, in the order [`memory`] reads them.
pub(super) const MEMORY_COLUMNS: &str = "seq, id, project_id, user_id, conversation_id, memory_key, memory_value, memory_type, \
     memory_time, status, confidence, tags, info, agent_id, app_id, sources, create_time, update_time, reasoning";
/// `messages`, in the order [`message`] reads them.
pub(super) const MESSAGE_COLUMNS: &str = "id, message_id, project_id, user_id, conversation_id, role, name, content, chat_time, create_time, task_id, raw";
/// Tasks counted by state, the same in both dialects.
/// The condition on `status` for [`super::ListQuery::statuses`] (the states are our own
/// fixed spellings, never client text, so they are written inline).
pub(super) fn status_sql(statuses: Option<&[MemoryStatus]>) -> String {
    match statuses {
        // Soft-deleted memories are kept for their history but never listed.
        None => "status <> 'deleted'".to_string(),
        Some([]) => "FALSE".to_string(),
        Some(list) => {
            let names: Vec<String> = list.iter().map(|s| format!("'{}'", s.as_str())).collect();
            format!("status IN ({})", names.join(", "))
        }
    }
}

/// A subject's conversations summed up, latest first; `?` marks the project, the user, the
/// limit and the offset (the PostgreSQL store numbers them).
pub(super) const CONVERSATIONS: &str = "SELECT conversation_id, count(*), min(chat_time), max(chat_time) \
     FROM messages WHERE project_id = ? AND user_id = ? GROUP BY conversation_id \
     ORDER BY max(chat_time) DESC, conversation_id LIMIT ? OFFSET ?";

pub(super) const TASK_COUNTS: &str = "SELECT status, count(*) FROM tasks GROUP BY status";

/// Parses [`TASK_COUNTS`]' rows: a state no longer known is corrupt data.
pub(super) fn task_counts(rows: Vec<(String, i64)>) -> Result<Vec<(TaskStatus, u64)>> {
    rows.into_iter()
        .map(|(s, n)| {
            let status = TaskStatus::parse(&s)
                .ok_or_else(|| Error::Corrupt(format!("unknown task status {s:?}")))?;
            Ok((status, n.max(0) as u64))
        })
        .collect()
}

/// `tasks`, in the order [`task`] reads them.
pub(super) const TASK_COLUMNS: &str =
    "id, project_id, user_id, status, payload, memory_ids, error, create_time, update_time";
/// `api_keys`, in the order [`key`] reads them.
pub(super) const KEY_COLUMNS: &str =
    "id, project_id, hash, prefix, label, create_time, revoked_time";
/// `history`, in the order [`change`] reads them.
pub(super) const CHANGE_COLUMNS: &str =
    "memory_id, project_id, user_id, time, kind, related_id, before, note";

/// `docs`, in the order [`doc`] reads them.
pub(super) const DOC_COLUMNS: &str =
    "kind, project_id, user_id, id, body, create_time, update_time";

/// A result row as a driver hands it over, read by column position.
pub(super) trait SqlRow {
    /// A non-null text column.
    fn text(&self, i: usize) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// A non-null integer column.
    fn int(&self, i: usize) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    /// A floating-point column.
    fn real(&self, i: usize) -> Result<f64>;
    /// A JSON column (text in SQLite, `jsonb` in PostgreSQL); `None` when null.
    fn json(&self, i: usize) -> Result<Option<Value>>;
}

/// A JSON column as a domain type.
fn json_col<T: DeserializeOwned>(r: &impl SqlRow, i: usize, what: &str) -> Result<T> {
    let v = r
        .json(i)?
        .ok_or_else(|| Error::Corrupt(format!("stored {what} is null")))?;
    serde_json::from_value(v).map_err(|e| Error::Corrupt(format!("stored {what}: {e}")))
}

/// A text column holding one of an enum's spellings.
fn enum_col<T>(
    r: &impl SqlRow,
    i: usize,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    let s = r.text(i)?;
    parse(&s).ok_or_else(|| Error::Corrupt(format!("stored {what} `{s}`")))
}

/// A memory and its write-order sequence number, from [`MEMORY_COLUMNS`].
pub(super) fn memory(r: &impl SqlRow) -> Result<(u64, Memory)> {
    Ok((
        r.int(0)? as u64,
        Memory {
            id: r.text(1)?,
            scope: Scope::new(r.text(2)?, r.text(3)?),
            conversation_id: r.text(4)?,
            key: r.text(5)?,
            value: r.text(6)?,
            memory_type: enum_col(r, 7, "memory_type", MemoryType::parse)?,
            memory_time: r.opt_int(8)?,
            status: enum_col(r, 9, "status", MemoryStatus::parse)?,
            confidence: r.real(10)? as f32,
            tags: json_col(r, 11, "tags")?,
            info: json_col(r, 12, "info")?,
            agent_id: r.opt_text(13)?,
            app_id: r.opt_text(14)?,
            sources: json_col(r, 15, "sources")?,
            create_time: r.int(16)?,
            update_time: r.int(17)?,
            reasoning: r.opt_text(18)?,
        },
    ))
}

/// A history entry, from [`CHANGE_COLUMNS`].
pub(super) fn change(r: &impl SqlRow) -> Result<MemoryChange> {
    Ok(MemoryChange {
        memory_id: r.text(0)?,
        scope: Scope::new(r.text(1)?, r.text(2)?),
        time: r.int(3)?,
        kind: enum_col(r, 4, "change kind", ChangeKind::parse)?,
        related_id: r.opt_text(5)?,
        before: r.opt_text(6)?,
        note: r.text(7)?,
    })
}

/// A chat-log message, from [`MESSAGE_COLUMNS`].
pub(super) fn message(r: &impl SqlRow) -> Result<Message> {
    Ok(Message {
        id: r.text(0)?,
        message_id: r.text(1)?,
        scope: Scope::new(r.text(2)?, r.text(3)?),
        conversation_id: r.text(4)?,
        role: enum_col(r, 5, "role", Role::parse)?,
        name: r.opt_text(6)?,
        content: r.text(7)?,
        chat_time: r.int(8)?,
        create_time: r.int(9)?,
        task_id: r.text(10)?,
        raw: r.json(11)?,
    })
}

/// A background task, from [`TASK_COLUMNS`].
pub(super) fn task(r: &impl SqlRow) -> Result<Task> {
    Ok(Task {
        id: r.text(0)?,
        scope: Scope::new(r.text(1)?, r.text(2)?),
        status: enum_col(r, 3, "task status", TaskStatus::parse)?,
        payload: json_col(r, 4, "task payload")?,
        memory_ids: json_col(r, 5, "memory_ids")?,
        error: r.opt_text(6)?,
        create_time: r.int(7)?,
        update_time: r.int(8)?,
    })
}

/// An API key, from [`KEY_COLUMNS`].
pub(super) fn key(r: &impl SqlRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.text(0)?,
        project_id: r.text(1)?,
        hash: r.text(2)?,
        prefix: r.text(3)?,
        label: r.text(4)?,
        create_time: r.int(5)?,
        revoked_time: r.opt_int(6)?,
    })
}

/// A document, from [`DOC_COLUMNS`].
pub(super) fn doc(r: &impl SqlRow) -> Result<Doc> {
    Ok(Doc {
        kind: r.text(0)?,
        project_id: r.text(1)?,
        user_id: r.text(2)?,
        id: r.text(3)?,
        body: json_col(r, 4, "document")?,
        create_time: r.int(5)?,
        update_time: r.int(6)?,
    })
}

/// A document selection as an SQL condition over `docs`, with its text parameters.
pub(super) fn docs_where(select: &DocSelect<'_>, dialect: Dialect) -> (String, Vec<String>) {
    let mut cond = vec!["1 = 1".to_string()];
    let mut bound = Vec::new();
    for (col, v) in [
        ("kind", select.kind),
        ("project_id", select.project_id),
        ("user_id", select.user_id),
        ("id", select.id),
    ] {
        if let Some(v) = v {
            bound.push(v.to_string());
            cond.push(match dialect {
                Dialect::Sqlite => format!("{col} = ?"),
                Dialect::Postgres => format!("{col} = ${}", bound.len()),
            });
        }
    }
    (cond.join(" AND "), bound)
}

/// A value bound to a query parameter, converted by each store to its driver's type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
}

/// The SQL dialect a filter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// SQLite: `?` parameters, JSON as text read with `json_each`.
    Sqlite,
    /// PostgreSQL: `$n` parameters, `jsonb` operators.
    Postgres,
}

/// Parameters of one query under construction: those of the filter, numbered after the
/// `bound` ones the query already holds.
struct Binder<'a> {
    dialect: Dialect,
    bound: usize,
    params: &'a mut Vec<Param>,
}

impl Binder<'_> {
    /// Binds `p` and returns its placeholder.
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${}", self.bound + self.params.len()),
        }
    }
}

/// A filter as an SQL condition over `memories` (named `table` in the query): the SQL twin
/// of [`Filter::matches`]. Its parameters are appended to `params`; `bound` is how many
/// the query binds before them (PostgreSQL numbers its placeholders).
pub(super) fn filter_sql(
    f: &Filter,
    dialect: Dialect,
    table: &str,
    bound: usize,
    params: &mut Vec<Param>,
) -> String {
    let mut b = Binder {
        dialect,
        bound,
        params,
    };
    let parts: Vec<String> = f
        .conditions
        .iter()
        .map(|c| match c {
            Condition::AgentId(a) => format!("{table}.agent_id = {}", b.bind(Param::Text(a.clone()))),
            Condition::AppId(a) => format!("{table}.app_id = {}", b.bind(Param::Text(a.clone()))),
            Condition::TagContains(t) => {
                let t = b.bind(Param::Text(t.clone()));
                match dialect {
                    Dialect::Sqlite => format!(
                        "EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE lower(json_each.value) = {t})"
                    ),
                    // memos_tags() is the expression of a GIN index (migration 0008), so
                    // the condition starts from the rows that carry the tag.
                    Dialect::Postgres => format!("memos_tags({table}.tags) @> ARRAY[{t}]::text[]"),
                }
            }
            Condition::MemoryType(t) => format!(
                "{table}.memory_type = {}",
                b.bind(Param::Text(t.as_str().to_string()))
            ),
            Condition::Time { field, min, max } => {
                let col = format!("{table}.{}", field.as_str());
                let mut s = format!("({col} IS NOT NULL");
                if let Some(lo) = min {
                    s.push_str(&format!(" AND {col} >= {}", b.bind(Param::Int(*lo))));
                }
                if let Some(hi) = max {
                    s.push_str(&format!(" AND {col} <= {}", b.bind(Param::Int(*hi))));
                }
                s.push(')');
                s
            }
            // The canonical text of strings, numbers and booleans, as the filter module
            // defines it; objects, arrays and null never match.
            Condition::Info { key, value } => {
                let k = b.bind(Param::Text(key.clone()));
                let v = b.bind(Param::Text(value.clone()));
                match dialect {
                    // json_each compares keys exactly, with no path syntax to escape.
                    Dialect::Sqlite => format!(
                        "EXISTS (SELECT 1 FROM json_each({table}.info) WHERE json_each.key = {k} AND \
                         (CASE json_each.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                         WHEN 'text' THEN json_each.value WHEN 'integer' THEN CAST(json_each.value AS TEXT) \
                         WHEN 'real' THEN CAST(json_each.value AS TEXT) END) = {v})"
                    ),
                    Dialect::Postgres => format!(
                        "(CASE jsonb_typeof({table}.info -> {k}) WHEN 'string' THEN {table}.info ->> {k} \
                         WHEN 'number' THEN ({table}.info -> {k})::text WHEN 'boolean' THEN ({table}.info -> {k})::text END) = {v}"
                    ),
                }
            }
        })
        .collect();
    let join = if f.logic == Logic::And {
        " AND "
    } else {
        " OR "
    };
    format!("({})", parts.join(join))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::TimeField;

    fn filter() -> Filter {
        Filter {
            logic: Logic::Or,
            conditions: vec![
                Condition::AgentId("a".into()),
                Condition::Time {
                    field: TimeField::CreateTime,
                    min: Some(1),
                    max: Some(2),
                },
                Condition::Info {
                    key: "k".into(),
                    value: "v".into(),
                },
            ],
        }
    }

    #[test]
    fn postgres_placeholders_follow_the_parameters_the_query_already_binds() {
        let mut params = Vec::new();
        let sql = filter_sql(&filter(), Dialect::Postgres, "m", 2, &mut params);
        assert!(sql.starts_with("(m.agent_id = $3 OR (m.create_time IS NOT NULL AND m.create_time >= $4 AND m.create_time <= $5)"), "{sql}");
        assert!(
            sql.contains("m.info -> $6") && sql.ends_with("= $7)"),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![
                Param::Text("a".into()),
                Param::Int(1),
                Param::Int(2),
                Param::Text("k".into()),
                Param::Text("v".into())
            ]
        );
    }

    #[test]
    fn sqlite_binds_positionally_in_the_same_order() {
        let mut params = Vec::new();
        let sql = filter_sql(&filter(), Dialect::Sqlite, "memories", 2, &mut params);
        assert_eq!(sql.matches('?').count(), params.len());
        assert!(!sql.contains('$'), "{sql}");
        assert_eq!(params.len(), 5);
    }
}
