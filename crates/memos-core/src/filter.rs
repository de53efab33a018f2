//! The MemOS filter language: a root `and` / `or` over conditions on agent, app, tags,
//! times and `info` fields.
//!
//! ```json
//! {"and": [{"agent_id": "a1"}, {"tags": {"contains": "food"}},
//!          {"create_time": {"gte": "2025-01-01"}}, {"scene": "chat"}]}
//! ```
//!
//! Parsing checks every field and operator and names the offender, so a typo is an error
//! rather than a filter that silently matches nothing. Each backend translates the parsed
//! [`Filter`] into its own query language; [`Filter::matches`] is the reference semantics
//! that the conformance suite holds them to.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{Memory, MemoryType, Millis};
use crate::time;

/// Most conditions one filter may hold; more is abuse, not a use case.
const MAX_CONDITIONS: usize = 64;

/// `info` keys MemOS lets clients write at the top level of a filter.
pub const TOP_LEVEL_INFO_KEYS: &[&str] = &["business_type", "biz_id", "scene", "custom_status"];

const FIELD: &str = "filter";

/// How the root combines its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    /// Every condition must hold.
    And,
    /// At least one condition must hold.
    Or,
}

/// A timestamp field of a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// `create_time`.
    CreateTime,
    /// `update_time`.
    UpdateTime,
    /// `memory_time`; memories without one never match a condition on it.
    MemoryTime,
}

impl TimeField {
    /// The field's name in requests and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTime => "create_time",
            Self::UpdateTime => "update_time",
            Self::MemoryTime => "memory_time",
        }
    }

    /// The field's value on a memory.
    pub fn of(self, f: &Fields<'_>) -> Option<Millis> {
        match self {
            Self::CreateTime => Some(f.create_time),
            Self::UpdateTime => Some(f.update_time),
            Self::MemoryTime => f.memory_time,
        }
    }
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `agent_id` equals.
    AgentId(String),
    /// `app_id` equals.
    AppId(String),
    /// `tags` holds this tag (case-insensitive).
    TagContains(String),
    /// The memory's type equals.
    MemoryType(MemoryType),
    /// A time field lies in `[min, max]` (both inclusive, in ms).
    Time {
        /// Which field.
        field: TimeField,
        /// Lower bound, inclusive.
        min: Option<Millis>,
        /// Upper bound, inclusive.
        max: Option<Millis>,
    },
    /// `info[key]`, printed canonically, equals `value`.
    Info {
        /// The info key.
        key: String,
        /// The expected value, canonical (see [`canonical_info_value`]).
        value: String,
    },
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// How conditions combine.
    pub logic: Logic,
    /// The conditions; never empty.
    pub conditions: Vec<Condition>,
}

/// The canonical string of an `info` value: strings as is, numbers and booleans as JSON
/// prints them. Objects, arrays and null have none and never match.
pub fn canonical_info_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

impl Filter {
    /// A filter of one condition, built in code rather than parsed.
    pub fn only(condition: Condition) -> Filter {
        Filter {
            logic: Logic::And,
            conditions: vec![condition],
        }
    }

    /// Parses a filter. `null` or `{}` mean no filter.
    pub fn parse(v: &Value) -> Result<Option<Filter>> {
        let obj = match v {
            Value::Null => return Ok(None),
            Value::Object(o) if o.is_empty() => return Ok(None),
            Value::Object(o) => o,
            Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_) => {
                return Err(Error::invalid(FIELD, "filter must be a JSON object"));
            }
        };
        let (logic, items): (Logic, Vec<(String, &Value)>) = match (obj.get("and"), obj.get("or")) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    FIELD,
                    "filter root may hold `and` or `or`, not both",
                ));
            }
            (Some(list), None) | (None, Some(list)) => {
                if obj.len() != 1 {
                    return Err(Error::invalid(
                        FIELD,
                        "filter root with `and`/`or` may hold nothing else",
                    ));
                }
                let logic = if obj.contains_key("and") {
                    Logic::And
                } else {
                    Logic::Or
                };
                let name = if logic == Logic::And { "and" } else { "or" };
                let list = list.as_array().ok_or_else(|| {
                    Error::invalid(
                        format!("filter.{name}"),
                        format!("filter.{name} must be a list of conditions"),
                    )
                })?;
                let mut items = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let c = c.as_object().filter(|c| c.len() == 1).ok_or_else(|| {
                        Error::invalid(
                            format!("filter.{name}[{i}]"),
                            format!("filter.{name}[{i}] must be an object with exactly one field"),
                        )
                    })?;
                    let (k, v) = c.iter().next().expect("one entry");
                    items.push((k.clone(), v));
                }
                (logic, items)
            }
            // A bare object of conditions: all must hold.
            (None, None) => (
                Logic::And,
                obj.iter().map(|(k, v)| (k.clone(), v)).collect(),
            ),
        };
        if items.is_empty() {
            return Ok(None);
        }
        if items.len() > MAX_CONDITIONS {
            return Err(Error::invalid(
                FIELD,
                format!("filter may hold at most {MAX_CONDITIONS} conditions"),
            ));
        }
        let mut conditions = Vec::with_capacity(items.len());
        for (key, value) in items {
            parse_condition(&key, value, &mut conditions)?;
        }
        Ok(Some(Filter { logic, conditions }))
    }

    /// Whether a memory satisfies the filter. The reference semantics for every backend.
    pub fn matches(&self, m: &Memory) -> bool {
        self.matches_fields(&Fields::of(m))
    }

    /// Whether a memory of these fields satisfies the filter ([`Self::matches`] for a copy
    /// that keeps only what filters read). Without `info`, a condition on it never holds:
    /// check [`Self::reads_info`] first.
    pub fn matches_fields(&self, f: &Fields<'_>) -> bool {
        let test = |c: &Condition| c.holds(f);
        match self.logic {
            Logic::And => self.conditions.iter().all(test),
            Logic::Or => self.conditions.iter().any(test),
        }
    }

    /// Whether a condition reads `info`.
    pub fn reads_info(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c, Condition::Info { .. }))
    }
}

/// What a filter reads of a memory.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// `agent_id`.
    pub agent_id: Option<&'a str>,
    /// `app_id`.
    pub app_id: Option<&'a str>,
    /// The tags.
    pub tags: &'a [String],
    /// Whether `tags` are lower-cased already (as the database lower-cases them, which is
    /// what its own filters compare).
    pub tags_lowered: bool,
    /// The type.
    pub memory_type: MemoryType,
    /// `create_time`.
    pub create_time: Millis,
    /// `update_time`.
    pub update_time: Millis,
    /// `memory_time`.
    pub memory_time: Option<Millis>,
    /// `info`, where kept.
    pub info: Option<&'a Map<String, Value>>,
}

impl<'a> Fields<'a> {
    /// A memory's.
    pub fn of(m: &'a Memory) -> Self {
        Self {
            agent_id: m.agent_id.as_deref(),
            app_id: m.app_id.as_deref(),
            tags: &m.tags,
            tags_lowered: false,
            memory_type: m.memory_type,
            create_time: m.create_time,
            update_time: m.update_time,
            memory_time: m.memory_time,
            info: Some(&m.info),
        }
    }
}

impl Condition {
    /// Whether one condition holds for a memory.
    pub fn matches(&self, m: &Memory) -> bool {
        self.holds(&Fields::of(m))
    }

    /// Whether one condition holds for a memory of these fields.
    fn holds(&self, f: &Fields<'_>) -> bool {
        match self {
            Self::AgentId(a) => f.agent_id == Some(a.as_str()),
            Self::AppId(a) => f.app_id == Some(a.as_str()),
            // No string allocated per tag where it can be helped: a copy of a big user
            // checks every memory's tags this way.
            Self::TagContains(t) => f.tags.iter().any(|x| {
                if f.tags_lowered {
                    x == t
                } else if x.is_ascii() {
                    x.len() == t.len()
                        && x.bytes()
                            .zip(t.bytes())
                            .all(|(a, b)| a.to_ascii_lowercase() == b)
                } else {
                    x.to_lowercase() == *t
                }
            }),
            Self::MemoryType(t) => f.memory_type == *t,
            Self::Time { field, min, max } => field
                .of(f)
                .is_some_and(|t| min.is_none_or(|lo| t >= lo) && max.is_none_or(|hi| t <= hi)),
            Self::Info { key, value } => {
                f.info
                    .and_then(|i| i.get(key))
                    .and_then(canonical_info_value)
                    .as_deref()
                    == Some(value.as_str())
            }
        }
    }
}

fn parse_condition(key: &str, v: &Value, out: &mut Vec<Condition>) -> Result<()> {
    let field = format!("filter.{key}");
    match key {
        "agent_id" => out.push(Condition::AgentId(eq_string(&field, v)?)),
        "app_id" => out.push(Condition::AppId(eq_string(&field, v)?)),
        "tags" => {
            let tag = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) if o.len() == 1 && o.contains_key("contains") => {
                    o["contains"].as_str().map(str::to_string).ok_or_else(|| {
                        Error::invalid(
                            format!("{field}.contains"),
                            format!("{field}.contains must be a string"),
                        )
                    })?
                }
                Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::Array(_)
                | Value::Object(_) => {
                    return Err(Error::invalid(
                        &field,
                        format!("{field} must be {{\"contains\": \"tag\"}}"),
                    ));
                }
            };
            out.push(Condition::TagContains(tag.to_lowercase()));
        }
        "memory_type" => {
            let s = eq_string(&field, v)?;
            let t = MemoryType::parse(&s)
                .filter(|t| *t != MemoryType::WorkingMemory)
                .ok_or_else(|| {
                    Error::invalid(
                        &field,
                        format!("{field} must be LongTermMemory or UserMemory, not `{s}`"),
                    )
                })?;
            out.push(Condition::MemoryType(t));
        }
        "create_time" | "update_time" | "memory_time" => {
            let tf = match key {
                "create_time" => TimeField::CreateTime,
                "update_time" => TimeField::UpdateTime,
                _ => TimeField::MemoryTime,
            };
            out.push(parse_time(&field, tf, v)?);
        }
        "info" => {
            let o = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
                Error::invalid(&field, "filter.info must be an object of key: value pairs")
            })?;
            for (k, val) in o {
                out.push(info_condition(&format!("{field}.{k}"), k, val)?);
            }
        }
        "user_id" => {
            return Err(Error::invalid(
                &field,
                "user_id cannot be filtered on; it is a field of the request itself",
            ));
        }
        _ => {
            if let Some(k) = key.strip_prefix("info.") {
                out.push(info_condition(&field, k, v)?);
            } else if TOP_LEVEL_INFO_KEYS.contains(&key) {
                out.push(info_condition(&field, key, v)?);
            } else {
                return Err(Error::invalid(
                    &field,
                    format!(
                        "{field}: unknown filter field `{key}`; use agent_id, app_id, tags, memory_type, create_time, update_time, \
                         memory_time, {}, or info.<key>",
                        TOP_LEVEL_INFO_KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn eq_string(field: &str, v: &Value) -> Result<String> {
    // `{"eq": x}` (or `{"=": x}`) says the same as `x`.
    let v = match v.as_object().filter(|o| o.len() == 1) {
        Some(o) => o.get("eq").or_else(|| o.get("=")).unwrap_or(&Value::Null),
        None => v,
    };
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(field, format!("{field} must be a string")))
}

fn info_condition(field: &str, key: &str, v: &Value) -> Result<Condition> {
    let v = match v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("eq"))
    {
        Some(eq) => eq,
        None => v,
    };
    let value = canonical_info_value(v).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{field} must be a string, number or boolean"),
        )
    })?;
    if key.is_empty() {
        return Err(Error::invalid(field, "info key cannot be empty"));
    }
    Ok(Condition::Info {
        key: key.to_string(),
        value,
    })
}

const DAY_MS: Millis = 86_400_000;

fn parse_time(field: &str, tf: TimeField, v: &Value) -> Result<Condition> {
    let ops: &Map<String, Value> = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{field} must be an object such as {{\"gte\": \"2025-01-01\"}}"),
        )
    })?;
    let (mut min, mut max): (Option<Millis>, Option<Millis>) = (None, None);
    for (op, val) in ops {
        let at = time::parse_value(val).ok_or_else(|| {
            Error::invalid(
                format!("{field}.{op}"),
                format!("{field}.{op} must be an ISO 8601 time, epoch seconds or milliseconds, or a date in words (3 May 2025 3pm, 2025年5月3日 下午3点)"),
            )
        })?;
        // A bare date names a whole day: `lte 2025-12-31` includes that day's evening.
        let whole_day = val.as_str().is_some_and(|s| s.trim().len() == 10);
        let day_end = if whole_day { at + DAY_MS - 1 } else { at };
        let (lo, hi) = match op.as_str() {
            "gt" => (Some(day_end + 1), None),
            "gte" => (Some(at), None),
            "lt" => (None, Some(at - 1)),
            "lte" => (None, Some(day_end)),
            "eq" => (Some(at), Some(day_end)),
            _ => {
                return Err(Error::invalid(
                    format!("{field}.{op}"),
                    format!("{field}.{op}: unknown operator `{op}`; use gt, gte, lt, lte or eq"),
                ));
            }
        };
        min = max_opt(min, lo);
        max = min_opt(max, hi);
    }
    Ok(Condition::Time {
        field: tf,
        min,
        max,
    })
}

fn max_opt(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Filter {
        Filter::parse(&v).unwrap().unwrap()
    }

    // Any other error fails the test; listing them would add nothing.
    #[allow(clippy::wildcard_enum_match_arm)]
    fn err_field(v: Value) -> String {
        match Filter::parse(&v).unwrap_err() {
            Error::InvalidInput { field, .. } => field,
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let f = parse(json!({"and": [
            {"tags": {"contains": "Reading"}},
            {"create_time": {"gte": "2025-01-01"}},
            {"create_time": {"lte": "2025-12-31"}},
            {"scene": "chat"}
        ]}));
        assert_eq!(f.logic, Logic::And);
        assert_eq!(f.conditions[0], Condition::TagContains("reading".into()));
        assert_eq!(
            f.conditions[2],
            Condition::Time {
                field: TimeField::CreateTime,
                min: None,
                max: Some(1_767_225_599_999)
            }
        );
        assert_eq!(
            f.conditions[3],
            Condition::Info {
                key: "scene".into(),
                value: "chat".into()
            }
        );
    }

    #[test]
    fn empty_filters_are_no_filter() {
        assert_eq!(Filter::parse(&Value::Null).unwrap(), None);
        assert_eq!(Filter::parse(&json!({})).unwrap(), None);
        assert_eq!(Filter::parse(&json!({"and": []})).unwrap(), None);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err_field(json!({"and": [{"colour": "red"}]})),
            "filter.colour"
        );
        assert_eq!(
            err_field(json!({"and": [{"user_id": "u"}]})),
            "filter.user_id"
        );
        assert_eq!(
            err_field(json!({"and": [{"create_time": {"since": 1}}]})),
            "filter.create_time.since"
        );
        assert_eq!(
            err_field(json!({"and": [{"create_time": {"gte": "soon"}}]})),
            "filter.create_time.gte"
        );
        assert_eq!(err_field(json!({"or": "x"})), "filter.or");
        assert_eq!(
            err_field(json!({"and": [{"a": 1, "b": 2}]})),
            "filter.and[0]"
        );
        assert_eq!(err_field(json!([1])), "filter");
    }

    #[test]
    fn or_and_info_semantics() {
        let mut m = crate::store::tests_support::memory("u", "c", "hello");
        m.agent_id = Some("a1".into());
        m.info.insert("biz_id".into(), json!(42));
        assert!(parse(json!({"and": [{"agent_id": "a1"}, {"info.biz_id": "42"}]})).matches(&m));
        assert!(parse(json!({"info": {"biz_id": 42}})).matches(&m));
        assert!(!parse(json!({"and": [{"agent_id": "a1"}, {"app_id": "x"}]})).matches(&m));
        assert!(parse(json!({"or": [{"agent_id": "zz"}, {"biz_id": 42}]})).matches(&m));
        assert!(
            !parse(json!({"and": [{"memory_time": {"gte": 0}}]})).matches(&{
                let mut m = m.clone();
                m.memory_time = None;
                m
            })
        );
    }
}
