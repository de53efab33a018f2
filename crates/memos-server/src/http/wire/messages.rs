//! Requests that carry chat messages (`add/message`, `extract/memory`) and the conversion
//! of MemOS's and OpenAI's message format (tool calls, content parts) to the domain's.

use memos_core::Error;
use memos_core::error::InputErrorKind;
use memos_core::model::Role;
use memos_core::service::{AddInput, NewMessage};
use memos_core::time;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::fields::{none_listed, plain_user, required, subject};

/// `add/message` request. Unknown fields are refused (a dropped field could change what
/// is stored); the SDK's `source` is accepted and ignored, its sharing fields act
/// (`allow_knowledgebase_ids`, `allow_public`: copies into knowledge bases).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMessageRequest {
    /// The end user whose memory this is (or `agent_id` alone: the agent's own memory).
    #[serde(default, deserialize_with = "plain_user")]
    user_id: Option<String>,
    /// The conversation the messages belong to.
    #[schema(required = true, value_type = String, min_length = 1)]
    conversation_id: Option<String>,
    /// The turns, oldest first, in MemOS's or OpenAI's chat format.
    #[schema(required = true, value_type = Vec<WireMessage>, min_items = 1)]
    messages: Option<Vec<WireMessage>>,
    /// The agent: with `user_id` a label, alone the subject.
    #[serde(default)]
    agent_id: Option<String>,
    /// The application (a label, filterable).
    #[serde(default)]
    app_id: Option<String>,
    /// Tags given to every memory of this add.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Free-form fields kept with every memory (filterable as `info.key`).
    #[serde(default)]
    info: Option<Map<String, Value>>,
    /// `true` (default): answer at once with a task id; `false`: answer when the memories
    /// are searchable, with their ids.
    #[serde(default, alias = "asyncMode")]
    async_mode: Option<bool>,
    /// Where the messages come from (a label); changes nothing.
    #[serde(default)]
    source: Option<Value>,
    /// `true`: the memories made are also written into the project's public knowledge base
    /// (`kb_public`, made on first use), which every user's search can name.
    #[serde(default)]
    allow_public: Option<bool>,
    /// Knowledge bases of the project that the memories made are also written into
    /// (each must exist); every search of those bases finds them.
    #[serde(default)]
    allow_knowledgebase_ids: Option<Vec<String>>,
    /// MemOS memory views: only none.
    #[serde(default)]
    allow_memory_view: Option<Vec<String>>,
}

/// One chat message on the wire: MemOS's fields and OpenAI's chat format, tool calls and
/// multimodal parts included, so an agent framework's transcript goes in as it is. Unknown
/// fields are refused rather than dropped, which would store the turn without them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WireMessage {
    /// `user`, `assistant`, `system` or `tool`.
    role: Option<String>,
    /// Text, or OpenAI content parts (`text`, `image_url`, `file`, `input_audio`).
    #[serde(default)]
    content: Option<Value>,
    /// When it was said: ISO 8601, epoch seconds or milliseconds, or a date in words.
    #[serde(default)]
    chat_time: Option<Value>,
    /// The speaker's name (kept in `sources`).
    #[serde(default)]
    name: Option<String>,
    /// The client's id of the message (kept in `sources`).
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
            knowledgebase_ids: self.allow_knowledgebase_ids.unwrap_or_default(),
            public: self.allow_public.unwrap_or(false),
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

/// `extract/memory` request: what an add would remember, stored nowhere.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractMemoryRequest {
    /// The messages, as in an add.
    #[schema(required = true, value_type = Vec<WireMessage>, min_items = 1)]
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
