//! Wire types of the MemOS cloud API (`/api/openmem/v1`) and their conversion to and from
//! the domain. Required fields are `Option`s checked by hand so that a missing one gets
//! MemOS's 40002 code with the field's name rather than a serde message.

use memos_core::Error;
use memos_core::error::InputErrorKind;
use memos_core::filter::{Condition, Filter, Logic};
use memos_core::ingest::llm::IMPLICIT_TAG;
use memos_core::model::{
    Memory, MemoryChange, MemoryType, Message, Role, Source, Task, agent_subject, subject_agent,
};
use memos_core::service::{AddInput, NewMessage, SearchHit};
use memos_core::time;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The subject of a read or a delete, as the scope's user id: a user, or an agent (MemOS's
/// agent memory, kept apart from every user's). Exactly one of the two.
pub fn subject(user_id: Option<String>, agent_id: Option<String>) -> Result<String, Error> {
    let blank = |s: &String| s.trim().is_empty();
    match (
        user_id.filter(|u| !blank(u)),
        agent_id.filter(|a| !blank(a)),
    ) {
        (Some(u), None) => Ok(u),
        (None, Some(a)) => Ok(agent_subject(&a)),
        (Some(_), Some(_)) => Err(Error::invalid(
            "agent_id",
            "give user_id or agent_id as the subject, not both",
        )),
        (None, None) => Err(Error::required("user_id or agent_id")),
    }
}

/// Takes a required string field, or names it in a 40002 error.
pub fn required(v: Option<String>, field: &str) -> Result<String, Error> {
    v.filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::required(field))
}

/// MemOS SDK fields that memos accepts only at the value that changes nothing: a field
/// whose value would change what a call stores or returns is refused rather than dropped.
pub fn only_default<T: PartialEq + std::fmt::Debug>(
    field: &str,
    value: &Option<T>,
    accepted: &[T],
    why: &str,
) -> Result<(), Error> {
    match value {
        Some(v) if !accepted.contains(v) => Err(Error::invalid(
            field,
            format!("{field} = {v:?} is not supported: {why}"),
        )),
        _ => Ok(()),
    }
}

/// A list field the SDK sends empty or null by default; a non-empty one is refused.
fn none_listed(field: &str, value: &Option<Vec<String>>, why: &str) -> Result<(), Error> {
    match value {
        Some(v) if !v.is_empty() => Err(Error::invalid(
            field,
            format!("{field} is not supported yet: {why}"),
        )),
        _ => Ok(()),
    }
}

/// `add/message` request. Unknown fields are refused (a dropped field could change what
/// is stored); the SDK's `source` is accepted and ignored, its sharing fields only at their
/// defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMessageRequest {
    #[serde(default, deserialize_with = "plain_user")]
    user_id: Option<String>,
    conversation_id: Option<String>,
    messages: Option<Vec<WireMessage>>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    info: Option<Map<String, Value>>,
    #[serde(default, alias = "asyncMode")]
    async_mode: Option<bool>,
    /// Where the messages come from (a label); changes nothing.
    #[serde(default)]
    source: Option<Value>,
    /// Sharing with other users: only `false`.
    #[serde(default)]
    allow_public: Option<bool>,
    /// Writing into knowledge bases: only none.
    #[serde(default)]
    allow_knowledgebase_ids: Option<Vec<String>>,
    /// MemOS memory views: only none.
    #[serde(default)]
    allow_memory_view: Option<Vec<String>>,
}

/// One chat message on the wire: MemOS's fields and OpenAI's chat format, tool calls and
/// multimodal parts included, so an agent framework's transcript goes in as it is. Unknown
/// fields are refused rather than dropped, which would store the turn without them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireMessage {
    role: Option<String>,
    /// Text, or OpenAI content parts (`text`, `image_url`, `file`, `input_audio`).
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    chat_time: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    /// An assistant turn's tool calls (`[{id, type: "function", function: {name, arguments}}]`).
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
    /// A tool turn's answer to this call.
    #[serde(default)]
    tool_call_id: Option<String>,
}

/// Most characters of a URL kept in a message's indexed text (a `data:` URL is cut).
const MAX_URL_CHARS: usize = 300;

/// The text of one content part: its text, or a marker that keeps what the part points at.
fn part_text(part: &Value) -> Option<String> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let url = |v: Option<&Value>| {
        v.and_then(|u| u.get("url").or(Some(u)))
            .and_then(Value::as_str)
            .map(|u| {
                if u.starts_with("data:") {
                    "inline data".to_string()
                } else {
                    u.chars().take(MAX_URL_CHARS).collect()
                }
            })
    };
    match kind {
        "text" | "input_text" => part.get("text").and_then(Value::as_str).map(str::to_string),
        "image_url" => Some(format!(
            "[image: {}]",
            url(part.get("image_url")).unwrap_or_default()
        )),
        "file" => {
            let f = part.get("file");
            let name = f
                .and_then(|f| f.get("filename").or(f.get("file_id")))
                .and_then(Value::as_str)
                .unwrap_or("attached");
            Some(format!("[file: {name}]"))
        }
        "input_audio" => Some("[audio]".into()),
        _ => part.get("text").and_then(Value::as_str).map(str::to_string),
    }
}

/// A tool call as text the memory can be found by: `[tool call] name(arguments)`.
fn tool_call_text(call: &Value) -> String {
    let f = call.get("function").unwrap_or(call);
    let name = f.get("name").and_then(Value::as_str).unwrap_or("tool");
    let args = match f.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    format!("[tool call] {name}({args})")
}

impl WireMessage {
    /// The message's text (what is indexed and extracted from) and what is kept verbatim
    /// beside it. `field` names the message in errors.
    fn text_and_raw(
        content: Option<Value>,
        tool_calls: Option<Vec<Value>>,
        tool_call_id: Option<String>,
        field: &dyn Fn(&str) -> String,
    ) -> Result<(String, Option<Value>), Error> {
        let mut raw = Map::new();
        let mut text = match content {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(Value::Array(parts)) => {
                let t = parts
                    .iter()
                    .filter_map(part_text)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                raw.insert("content".into(), Value::Array(parts));
                t
            }
            Some(_) => {
                return Err(Error::invalid(
                    field("content"),
                    format!(
                        "{} must be a string or a list of content parts",
                        field("content")
                    ),
                ));
            }
        };
        if let Some(calls) = tool_calls.filter(|c| !c.is_empty()) {
            let calls_text: Vec<String> = calls.iter().map(tool_call_text).collect();
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&calls_text.join(" "));
            raw.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(id) = tool_call_id {
            raw.insert("tool_call_id".into(), Value::String(id));
        }
        Ok((text, (!raw.is_empty()).then_some(Value::Object(raw))))
    }
}

impl AddMessageRequest {
    /// Checks and converts to the domain request.
    pub fn into_input(self) -> Result<AddInput, Error> {
        let _ = self.source;
        only_default(
            "allow_public",
            &self.allow_public,
            &[false],
            "memories stay private to their user",
        )?;
        none_listed(
            "allow_knowledgebase_ids",
            &self.allow_knowledgebase_ids,
            "knowledge bases are not served",
        )?;
        none_listed(
            "allow_memory_view",
            &self.allow_memory_view,
            "memory views are not served",
        )?;
        // The user is the subject, `agent_id` the agent that sent the messages; with no
        // user, the agent itself is the subject (its own memory).
        let user_id = match self.user_id.as_ref().filter(|u| !u.trim().is_empty()) {
            Some(_) => required(self.user_id, "user_id")?,
            None => subject(None, self.agent_id.clone())?,
        };
        let conversation_id = required(self.conversation_id, "conversation_id")?;
        let messages = new_messages(self.messages)?;
        Ok(AddInput {
            user_id,
            conversation_id,
            messages,
            tags: self.tags.unwrap_or_default(),
            info: self.info.unwrap_or_default(),
            agent_id: self.agent_id,
            app_id: self.app_id,
            async_mode: self.async_mode.unwrap_or(true),
        })
    }
}

/// Checks and converts wire messages (an add's, an extraction's), naming a bad one's field.
fn new_messages(wire: Option<Vec<WireMessage>>) -> Result<Vec<NewMessage>, Error> {
    let wire = wire.ok_or_else(|| Error::required("messages"))?;
    let mut messages = Vec::with_capacity(wire.len());
    for (i, m) in wire.into_iter().enumerate() {
        let field = |f: &str| format!("messages[{i}].{f}");
        let role = required(m.role, &field("role"))?;
        let role = Role::parse(&role).ok_or_else(|| {
            Error::invalid(
                field("role"),
                format!(
                    "{} must be user, assistant, system or tool, not `{role}`",
                    field("role")
                ),
            )
        })?;
        let (content, raw) =
            WireMessage::text_and_raw(m.content, m.tool_calls, m.tool_call_id, &field)?;
        let chat_time = match m.chat_time {
            None | Some(Value::Null) => None,
            Some(v) => Some(time::parse_value(&v).ok_or_else(|| {
                Error::invalid(
                    field("chat_time"),
                    format!(
                        "{} must be an ISO 8601 time, epoch seconds or milliseconds, or a date in words (3 May 2025 3pm, 2025年5月3日 下午3点)",
                        field("chat_time")
                    ),
                )
            })?),
        };
        messages.push(NewMessage {
            role,
            content,
            chat_time,
            name: m.name,
            message_id: m.message_id,
            raw,
        });
    }
    Ok(messages)
}

/// `search/memory` request. Unknown fields are refused; the SDK's other fields are taken
/// at the values that change nothing, or refused (see [`SearchMemoryRequest::check_sdk_fields`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchMemoryRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The query text.
    pub query: Option<String>,
    /// The current conversation (boost only).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// How many results.
    #[serde(default)]
    pub memory_limit_number: Option<usize>,
    /// MemOS filter.
    #[serde(default)]
    pub filter: Option<Value>,
    /// Search as of this time (ISO 8601 or epoch ms).
    #[serde(default)]
    pub query_time: Option<Value>,
    /// Also return the user's stated preferences relevant to the query (default true).
    #[serde(default)]
    pub include_preference: Option<bool>,
    /// How many preferences (default 6).
    #[serde(default)]
    pub preference_limit_number: Option<usize>,
    /// Least relativity a result must have (0 to 1); none by default.
    #[serde(default)]
    pub relativity: Option<f32>,
    /// Also return tool memories (`tool_memory_detail_list`).
    #[serde(default)]
    pub include_tool_memory: Option<bool>,
    /// How many tool memories.
    #[serde(default)]
    pub tool_memory_limit_number: Option<usize>,
    /// Also return skill memories (`skill_detail_list`).
    #[serde(default)]
    pub include_skill: Option<bool>,
    /// How many skill memories.
    #[serde(default)]
    pub skill_limit_number: Option<usize>,
    /// An agent as the subject instead of a user (exactly one of the two).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Knowledge bases to search beside the memories: none yet, so only `[]` or null.
    #[serde(default)]
    pub knowledgebase_ids: Option<Vec<String>>,
    /// MemOS memory views: only null.
    #[serde(default)]
    pub include_memory_view: Option<Vec<String>>,
    /// The answer's shape: only `memory`.
    #[serde(default)]
    pub context_format: Option<String>,
    /// Where the query comes from (a label); changes nothing.
    #[serde(default)]
    pub source: Option<Value>,
}

impl SearchMemoryRequest {
    /// Refuses SDK fields set to what memos does not serve, naming them.
    pub fn check_sdk_fields(&self) -> Result<(), Error> {
        none_listed(
            "knowledgebase_ids",
            &self.knowledgebase_ids,
            "knowledge bases are not served",
        )?;
        none_listed(
            "include_memory_view",
            &self.include_memory_view,
            "memory views are not served",
        )?;
        only_default(
            "context_format",
            &self.context_format,
            &["memory".to_string()],
            "memos answers memory lists",
        )?;
        if let Some(r) = self.relativity
            && !(0.0..=1.0).contains(&r)
        {
            return Err(Error::invalid(
                "relativity",
                "relativity must be between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// `get/profile` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetProfileRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
}

/// One entry of `preference_detail_list`, as MemOS shapes it.
#[derive(Debug, Serialize)]
pub struct PreferenceDetail {
    id: String,
    /// The preference in the third person, without the viewpoint prefix.
    preference: String,
    /// `explicit_preference` (the user said it) or `implicit_preference` (the LLM inferred it).
    preference_type: &'static str,
    /// Why it is believed: the LLM's reasoning for an inferred one, else when the user said it.
    reasoning: String,
    /// `like` or `dislike`.
    polarity: &'static str,
    memory_key: String,
    conversation_id: String,
    status: &'static str,
    create_time: i64,
    update_time: i64,
    /// How relevant to the query; absent in a plain listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    relativity: Option<f32>,
}

impl From<SearchHit> for PreferenceDetail {
    fn from(h: SearchHit) -> Self {
        let mut p = Self::from(h.memory);
        p.relativity = Some(h.relativity);
        p
    }
}

impl From<Memory> for PreferenceDetail {
    fn from(m: Memory) -> Self {
        let preference = m
            .value
            .split_once("] ")
            .filter(|_| m.value.starts_with('['))
            .map_or(m.value.as_str(), |(_, rest)| rest)
            .to_string();
        let said = m.sources.first().map(|s| time::to_date(s.chat_time));
        let implicit = m.tags.iter().any(|t| t == IMPLICIT_TAG);
        Self {
            id: m.id,
            preference,
            preference_type: if implicit {
                "implicit_preference"
            } else {
                "explicit_preference"
            },
            reasoning: match (&m.reasoning, said) {
                (Some(r), _) => r.clone(),
                (None, Some(day)) => format!("Stated by the user in their own words on {day}."),
                (None, None) => String::new(),
            },
            polarity: if m.tags.iter().any(|t| t == "dislike") {
                "dislike"
            } else {
                "like"
            },
            memory_key: m.key,
            conversation_id: m.conversation_id,
            status: m.status.as_str(),
            create_time: m.create_time,
            update_time: m.update_time,
            relativity: None,
        }
    }
}

/// `preference_note`: the preferences as one instruction an LLM prompt can include.
pub fn preference_note(list: &[PreferenceDetail]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let items: Vec<String> = list.iter().map(|p| p.preference.clone()).collect();
    format!(
        "The user has stated these preferences; respect them unless the user says otherwise: {}",
        items.join(" ")
    )
}

/// `get/memory` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMemoryRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// 1-based page.
    #[serde(default)]
    pub page: Option<usize>,
    /// Page size.
    #[serde(default)]
    pub size: Option<usize>,
    /// MemOS filter.
    #[serde(default)]
    pub filter: Option<Value>,
    /// Also list the user's preferences in `preference_detail_list` (default true).
    #[serde(default)]
    pub include_preference: Option<bool>,
    /// Also list tool memories in `tool_memory_detail_list`.
    #[serde(default)]
    pub include_tool_memory: Option<bool>,
    /// An agent as the subject instead of a user (exactly one of the two).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// MemOS memory views: only null.
    #[serde(default)]
    pub include_memory_view: Option<Vec<String>>,
}

impl GetMemoryRequest {
    /// Refuses SDK fields set to what memos does not serve, naming them.
    pub fn check_sdk_fields(&self) -> Result<(), Error> {
        none_listed(
            "include_memory_view",
            &self.include_memory_view,
            "memory views are not served",
        )
    }
}

/// `get/message` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMessageRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The conversation.
    pub conversation_id: Option<String>,
    /// How many of the newest messages.
    #[serde(default)]
    pub message_limit_number: Option<usize>,
    /// How many recent conversations, without a `conversation_id`; memos reads one
    /// conversation, named, so this changes nothing.
    #[serde(default)]
    pub conversation_limit_number: Option<usize>,
    /// Where the request comes from (a label); changes nothing.
    #[serde(default)]
    pub source: Option<Value>,
}

/// `delete/memory` request. Exactly one selection: `memory_ids` (optionally scoped to a
/// user), a user's memories by `filter` and/or `memory_type`, or a whole user (`user_id`
/// alone). Unknown fields are refused rather than dropped: a dropped selector would widen
/// the delete, in the worst case to the whole user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteMemoryRequest {
    /// Memories to delete. `null` is refused, not read as "absent".
    #[serde(default, deserialize_with = "present")]
    pub memory_ids: Option<Option<Vec<String>>>,
    /// With ids: only this user's; with a filter or type: the user whose matching memories
    /// go; alone: erase everything of this user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The older SDK's form of `user_id` beside `memory_ids` (one user).
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    /// An agent as the subject instead of a user: alone, erases the agent's own memory.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Delete the user's memories that match this MemOS filter. `null`, `{}` and an empty
    /// `and`/`or` are refused: they would select every memory.
    #[serde(default, deserialize_with = "present")]
    pub filter: Option<Option<Value>>,
    /// Delete the user's memories of this type (`WorkingMemory`, `LongTermMemory`,
    /// `UserMemory`). `null` is refused.
    #[serde(default, deserialize_with = "present")]
    pub memory_type: Option<Option<String>>,
    /// Remove for good, history included (privacy requests). Default: soft delete.
    #[serde(default)]
    pub hard: Option<bool>,
}

/// What a `delete/memory` request selects, once checked.
#[derive(Debug)]
pub enum DeleteSelection {
    /// These memories, only if they are this user's (when given).
    Ids {
        /// The ids.
        ids: Vec<String>,
        /// The user they must belong to.
        user_id: Option<String>,
    },
    /// The user's memories that match.
    Matching {
        /// The user.
        user_id: String,
        /// What they must match.
        filter: Filter,
    },
    /// Everything of the user: memories, chat log, history (the privacy path).
    User(String),
}

impl DeleteMemoryRequest {
    /// Checks the request and says what it deletes. Erasing a user is reached only when
    /// `user_id` comes alone; every other shape either narrows the delete or is refused.
    pub fn selection(self) -> Result<DeleteSelection, Error> {
        let ids = match self.memory_ids {
            None => None,
            Some(None) => {
                return Err(Error::invalid(
                    "memory_ids",
                    "memory_ids is null; send a list of ids or leave the field out",
                ));
            }
            Some(Some(ids)) if ids.is_empty() => {
                return Err(Error::input(
                    "memory_ids",
                    "memory_ids is empty",
                    InputErrorKind::Empty,
                ));
            }
            Some(Some(ids)) => Some(ids),
        };
        let filter = match self.filter {
            None => None,
            Some(None) => {
                return Err(Error::invalid(
                    "filter",
                    "filter is null; send a filter or leave the field out",
                ));
            }
            Some(Some(v)) => Some(Filter::parse(&v)?.ok_or_else(|| {
                Error::invalid(
                    "filter",
                    "filter has no conditions and would select every memory; \
                     to erase a whole user send only user_id",
                )
            })?),
        };
        let memory_type = match self.memory_type {
            None => None,
            Some(None) => {
                return Err(Error::invalid(
                    "memory_type",
                    "memory_type is null; name a type or leave the field out",
                ));
            }
            Some(Some(t)) => Some(MemoryType::parse(&t).ok_or_else(|| {
                Error::invalid(
                    "memory_type",
                    format!(
                        "memory_type must be WorkingMemory, LongTermMemory or UserMemory, not `{t}`"
                    ),
                )
            })?),
        };
        let user_id = match (self.user_id, self.user_ids) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "user_ids",
                    "give user_id or user_ids, not both",
                ));
            }
            (Some(u), None) => Some(u),
            (None, Some(mut list)) => {
                if ids.is_none() {
                    return Err(Error::invalid(
                        "user_ids",
                        "user_ids only scopes memory_ids; to select a user send user_id",
                    ));
                }
                if list.len() != 1 {
                    return Err(Error::invalid("user_ids", "user_ids must name one user"));
                }
                if list[0].chars().any(char::is_control) {
                    return Err(Error::invalid(
                        "user_ids",
                        "user_ids cannot contain control characters",
                    ));
                }
                list.pop()
            }
            (None, None) => None,
        };
        if user_id.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(Error::required("user_id"));
        }
        let user_id = match (user_id, self.agent_id) {
            (u, None) => u,
            (None, Some(a)) => Some(subject(None, Some(a))?),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "agent_id",
                    "give user_id or agent_id as the subject, not both",
                ));
            }
        };
        match (ids, filter, memory_type) {
            (Some(_), Some(_), _) => Err(Error::invalid(
                "filter",
                "give memory_ids or a filter, not both",
            )),
            (Some(_), None, Some(_)) => Err(Error::invalid(
                "memory_type",
                "give memory_ids or a memory_type, not both",
            )),
            (Some(ids), None, None) => Ok(DeleteSelection::Ids { ids, user_id }),
            (None, None, None) => match user_id {
                Some(u) => Ok(DeleteSelection::User(u)),
                None => Err(Error::required("memory_ids or user_id")),
            },
            // A filter, a type, or both: at least one condition, so never the whole user.
            (None, filter, memory_type) => {
                let user_id = user_id.ok_or_else(|| Error::required("user_id"))?;
                let mut filter = filter.unwrap_or(Filter {
                    logic: Logic::And,
                    conditions: vec![],
                });
                if let Some(t) = memory_type {
                    if filter.logic == Logic::Or && filter.conditions.len() > 1 {
                        return Err(Error::invalid(
                            "memory_type",
                            "memory_type narrows a filter; with an `or` filter put it \
                             inside the filter instead",
                        ));
                    }
                    filter.logic = Logic::And;
                    filter.conditions.push(Condition::MemoryType(t));
                }
                Ok(DeleteSelection::Matching { user_id, filter })
            }
        }
    }
}

/// A `user_id` as a client sends it: never the internal scope id of an agent subject
/// ([`memos_core::model::AGENT_SUBJECT`]), which would read an agent's memory as a user.
fn plain_user<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v = Option::<String>::deserialize(d)?;
    if v.as_deref()
        .is_some_and(|u| u.chars().any(char::is_control))
    {
        return Err(serde::de::Error::custom(
            "user_id cannot contain control characters",
        ));
    }
    Ok(v)
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`, via
/// `#[serde(default)]`), where the two must not mean the same.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `update/memory` request. `content` / `title` are the MemOS SDK's names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryRequest {
    /// The memory.
    pub memory_id: Option<String>,
    /// Only if it is this user's.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// New text.
    #[serde(default, alias = "content")]
    pub memory_value: Option<String>,
    /// New headline.
    #[serde(default, alias = "title")]
    pub memory_key: Option<String>,
    /// New tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// `activated` or `archived`.
    #[serde(default)]
    pub status: Option<String>,
}

/// `add/feedback` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFeedbackRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The conversation.
    pub conversation_id: Option<String>,
    /// The user's correction, in their words.
    pub feedback_content: Option<String>,
    /// When (ISO 8601 or epoch ms; default now).
    #[serde(default)]
    pub feedback_time: Option<Value>,
    /// The agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The app.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Sharing with other users: only `false`.
    #[serde(default)]
    pub allow_public: Option<bool>,
    /// Writing into knowledge bases: only none.
    #[serde(default)]
    pub allow_knowledgebase_ids: Option<Vec<String>>,
}

impl AddFeedbackRequest {
    /// Refuses SDK fields set to what memos does not serve, naming them.
    pub fn check_sdk_fields(&self) -> Result<(), Error> {
        only_default(
            "allow_public",
            &self.allow_public,
            &[false],
            "memories stay private to their user",
        )?;
        none_listed(
            "allow_knowledgebase_ids",
            &self.allow_knowledgebase_ids,
            "knowledge bases are not served",
        )
    }
}

/// `get/history` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetHistoryRequest {
    /// The memory.
    pub memory_id: Option<String>,
    /// Only if it is this user's.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
}

/// One history entry on the wire.
#[derive(Debug, Serialize)]
pub struct ChangeDetail {
    /// ISO 8601.
    time: String,
    /// merged, superseded, supersedes, updated, deleted.
    kind: &'static str,
    related_id: Option<String>,
    before: Option<String>,
    note: String,
}

impl From<MemoryChange> for ChangeDetail {
    fn from(c: MemoryChange) -> Self {
        Self {
            time: time::to_iso(c.time),
            kind: c.kind.as_str(),
            related_id: c.related_id,
            before: c.before,
            note: c.note,
        }
    }
}

/// `extract/memory` request: what an add would remember, stored nowhere.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractMemoryRequest {
    /// The messages, as in an add.
    pub messages: Option<Vec<WireMessage>>,
    /// `memory` and/or `preference` (default both).
    #[serde(default)]
    pub extraction_types: Option<Vec<String>>,
    /// An extraction model: memos extracts with its own rules, so only null.
    #[serde(default)]
    pub model: Option<String>,
}

impl ExtractMemoryRequest {
    /// The messages, and which kinds to return: (memory, preference).
    pub fn into_parts(self) -> Result<(Vec<NewMessage>, bool, bool), Error> {
        if self.model.as_deref().is_some_and(|m| !m.is_empty()) {
            return Err(Error::invalid(
                "model",
                "model is not selectable: memos extracts with its own rules",
            ));
        }
        let types = self
            .extraction_types
            .unwrap_or_else(|| vec!["memory".into(), "preference".into()]);
        if types.is_empty() {
            return Err(Error::input(
                "extraction_types",
                "extraction_types must name memory and/or preference",
                InputErrorKind::Empty,
            ));
        }
        for (i, t) in types.iter().enumerate() {
            if t != "memory" && t != "preference" {
                return Err(Error::invalid(
                    format!("extraction_types[{i}]"),
                    format!("extraction_types[{i}] must be memory or preference, not `{t}`"),
                ));
            }
        }
        let has = |t: &str| types.iter().any(|x| x == t);
        Ok((
            new_messages(self.messages)?,
            has("memory"),
            has("preference"),
        ))
    }
}

/// An extracted fact on the wire: what an add would store, without ids.
#[derive(Debug, Serialize)]
pub struct ExtractedMemory {
    memory_key: String,
    memory_value: String,
    memory_type: &'static str,
    memory_time: Option<String>,
    confidence: f32,
    tags: Vec<String>,
}

impl From<Memory> for ExtractedMemory {
    fn from(m: Memory) -> Self {
        Self {
            memory_type: m.memory_type.as_str(),
            memory_time: m.memory_time.map(time::to_iso),
            memory_key: m.key,
            memory_value: m.value,
            confidence: m.confidence,
            tags: m.tags,
        }
    }
}

/// An extracted preference on the wire, shaped like `preference_detail_list`'s items
/// without the stored ones' ids and times.
#[derive(Debug, Serialize)]
pub struct ExtractedPreference {
    preference: String,
    preference_type: &'static str,
    polarity: &'static str,
    memory_key: String,
    tags: Vec<String>,
}

impl From<Memory> for ExtractedPreference {
    fn from(m: Memory) -> Self {
        let p = PreferenceDetail::from(m.clone());
        Self {
            preference: p.preference,
            preference_type: p.preference_type,
            polarity: p.polarity,
            memory_key: m.key,
            tags: m.tags,
        }
    }
}

/// `rerank` request: candidate texts to order by relevance to a query (nothing stored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    /// What the documents are ranked against.
    pub query: Option<String>,
    /// The candidate texts.
    pub documents: Option<Vec<String>>,
    /// MemOS's reranker names are served by memos' own ranking (the embedding model and
    /// BM25 coverage); any other name is refused.
    #[serde(default)]
    pub model: Option<String>,
    /// Only the best `top_n`.
    #[serde(default)]
    pub top_n: Option<usize>,
    /// Who asks; changes nothing.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
}

/// Reranker names a client may send: MemOS's, served by memos' own ranking.
pub const RERANK_MODELS: [&str; 2] = ["memos-reranker-0.6b", "memos-reranker-4b"];

/// `get/status` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetStatusRequest {
    /// The task id an add returned.
    pub task_id: Option<String>,
}

/// A memory's source message on the wire.
#[derive(Debug, Serialize)]
pub struct SourceDetail {
    message_id: String,
    conversation_id: String,
    role: &'static str,
    name: Option<String>,
    chat_time: String,
}

impl From<&Source> for SourceDetail {
    fn from(s: &Source) -> Self {
        Self {
            message_id: s.message_id.clone(),
            conversation_id: s.conversation_id.clone(),
            role: s.role.as_str(),
            name: s.name.clone(),
            chat_time: time::to_iso(s.chat_time),
        }
    }
}

/// A memory item as MemOS returns it, plus our `sources`, `info`, `agent_id`, `app_id`.
#[derive(Debug, Serialize)]
pub struct MemoryDetail {
    id: String,
    /// The user whose memory it is; null for an agent's own memory (see `agent_id`).
    user_id: Option<String>,
    memory_key: String,
    memory_value: String,
    memory_type: &'static str,
    /// ISO 8601, or null when the memory has no time.
    memory_time: Option<String>,
    conversation_id: String,
    status: &'static str,
    confidence: f32,
    tags: Vec<String>,
    info: Map<String, Value>,
    agent_id: Option<String>,
    app_id: Option<String>,
    /// Epoch milliseconds, as MemOS's examples.
    create_time: i64,
    /// Epoch milliseconds.
    update_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    relativity: Option<f32>,
    sources: Vec<SourceDetail>,
}

impl From<Memory> for MemoryDetail {
    fn from(m: Memory) -> Self {
        // An agent's own memory answers with the agent as its subject, never the internal
        // scope id.
        let (user_id, agent_id) = match subject_agent(&m.scope.user_id) {
            Some(agent) => (None, Some(agent.to_string())),
            None => (Some(m.scope.user_id), m.agent_id),
        };
        Self {
            user_id,
            agent_id,
            memory_type: m.memory_type.as_str(),
            memory_time: m.memory_time.map(time::to_iso),
            status: m.status.as_str(),
            sources: m.sources.iter().map(SourceDetail::from).collect(),
            id: m.id,
            memory_key: m.key,
            memory_value: m.value,
            conversation_id: m.conversation_id,
            confidence: m.confidence,
            tags: m.tags,
            info: m.info,
            app_id: m.app_id,
            create_time: m.create_time,
            update_time: m.update_time,
            relativity: None,
        }
    }
}

impl From<SearchHit> for MemoryDetail {
    fn from(h: SearchHit) -> Self {
        let mut d = MemoryDetail::from(h.memory);
        d.memory_type = h.memory_type.as_str();
        d.relativity = Some(h.relativity);
        d
    }
}

/// A chat-log message on the wire.
#[derive(Debug, Serialize)]
pub struct MessageDetail {
    message_id: String,
    conversation_id: String,
    role: &'static str,
    name: Option<String>,
    content: String,
    chat_time: String,
    create_time: i64,
    update_time: i64,
    /// An assistant turn's tool calls, as the client sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
    /// The tool call a tool turn answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Value>,
    /// Multimodal content parts, as the client sent them (`content` holds their text).
    #[serde(skip_serializing_if = "Option::is_none")]
    content_parts: Option<Value>,
}

impl From<Message> for MessageDetail {
    fn from(m: Message) -> Self {
        let mut raw = match m.raw {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        Self {
            tool_calls: raw.remove("tool_calls"),
            tool_call_id: raw.remove("tool_call_id"),
            content_parts: raw.remove("content"),
            role: m.role.as_str(),
            chat_time: time::to_iso(m.chat_time),
            message_id: m.message_id,
            conversation_id: m.conversation_id,
            name: m.name,
            content: m.content,
            create_time: m.create_time,
            update_time: m.create_time,
        }
    }
}

/// A task on the wire.
#[derive(Debug, Serialize)]
pub struct TaskDetail {
    task_id: String,
    status: &'static str,
    memory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    create_time: i64,
    update_time: i64,
}

impl From<Task> for TaskDetail {
    fn from(t: Task) -> Self {
        Self {
            status: t.status.as_str(),
            task_id: t.id,
            memory_ids: t.memory_ids,
            error: t.error,
            create_time: t.create_time,
            update_time: t.update_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use memos_core::model::{MemoryStatus, MemoryType, Scope};

    use super::*;

    fn preference(tags: &[&str], reasoning: Option<&str>) -> Value {
        let m = Memory {
            id: "m".into(),
            scope: Scope::new("p", "u"),
            conversation_id: "c".into(),
            key: "User's travel preferences".into(),
            value: "[user viewpoint] The user likes night trains.".into(),
            memory_type: MemoryType::UserMemory,
            memory_time: None,
            status: MemoryStatus::Activated,
            confidence: 0.9,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            info: Map::new(),
            agent_id: None,
            app_id: None,
            sources: vec![],
            reasoning: reasoning.map(str::to_string),
            create_time: 1,
            update_time: 1,
        };
        let hit = SearchHit {
            memory_type: m.memory_type,
            relativity: 0.5,
            memory: m,
        };
        serde_json::to_value(PreferenceDetail::from(hit)).unwrap()
    }

    #[test]
    fn preferences_say_whether_they_were_said_or_inferred_and_why() {
        let said = preference(&["preference", "like"], None);
        assert_eq!(said["preference_type"], "explicit_preference");
        assert_eq!(said["preference"], "The user likes night trains.");
        assert_eq!(said["polarity"], "like");
        let inferred = preference(
            &["preference", "like", IMPLICIT_TAG],
            Some("Books sleeper cabins every trip."),
        );
        assert_eq!(inferred["preference_type"], "implicit_preference");
        assert_eq!(inferred["reasoning"], "Books sleeper cabins every trip.");
    }
}
