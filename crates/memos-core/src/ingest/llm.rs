//! The fine path: memory items extracted by any OpenAI-compatible chat-completions endpoint
//! (OpenAI, vLLM, llama.cpp's server, Ollama, ...).
//!
//! One call per window of messages asks for memory items as JSON: key, value, type, tags,
//! memory_time, preference; third person, the user's language, absolute dates. The request
//! carries a bounded JSON schema (`response_format: json_schema`, `maxItems` on every list),
//! or asks for a plain JSON object where a server only knows that dialect; either way the
//! reply is checked against the same schema here, since not every server enforces it. Bad
//! replies, 429s, 5xxs and timeouts are retried with exponential backoff; token use is
//! counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::AddContext;
use super::fast::PREFERENCE_TAG;
use crate::config::LlmConfig;
use crate::error::{Error, Result};
use crate::llm_usage::{Job, Ledger};
use crate::model::{Memory, MemoryStatus, MemoryType, Message, Millis, Role, Source};
use crate::time;

/// Most items one window may return; the schema says so too.
pub const MAX_ITEMS: usize = 20;
/// Most items the schema allows per message of the transcript (a message that lists its
/// writer's five favourite things is five).
const ITEMS_PER_MESSAGE: usize = 5;
const MAX_TAGS: usize = 8;
const MAX_KEY: usize = 120;
const MAX_VALUE: usize = 1_000;
const MAX_REASONING: usize = 300;
/// Tag on preferences the LLM inferred rather than heard.
pub const IMPLICIT_TAG: &str = "implicit_preference";

/// Token and call counts, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Requests sent, retries included.
    pub calls: u64,
    /// Requests that were retried (bad reply, 429, 5xx, timeout).
    pub retries: u64,
    /// Windows that failed after every retry.
    pub failures: u64,
    /// Prompt tokens the server reported.
    pub prompt_tokens: u64,
    /// Completion tokens the server reported.
    pub completion_tokens: u64,
}

/// An LLM memory extractor.
#[derive(Debug)]
pub struct LlmExtractor {
    client: reqwest::Client,
    config: LlmConfig,
    api_key: Option<String>,
    usage: Mutex<Usage>,
    /// Calls and tokens by project, for `/metrics`.
    ledger: Arc<Ledger>,
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fatal(String),
}

impl LlmExtractor {
    /// An extractor for the configured endpoint. The API key comes from the environment
    /// variable `config.api_key_env` (none is fine for local servers).
    pub fn new(config: LlmConfig, ledger: Arc<Ledger>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| Error::Config(format!("llm client: {e}")))?;
        let api_key = config.api_key();
        Ok(Self {
            client,
            config,
            api_key,
            usage: Mutex::new(Usage::default()),
            ledger,
        })
    }

    /// The model name, for `/health`.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Counts so far.
    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut Usage)) {
        f(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Memory items for `messages`, one call per window of `llm.window` messages.
    pub async fn extract(
        &self,
        ctx: &AddContext,
        messages: &[Message],
        now: Millis,
    ) -> Result<Vec<Memory>> {
        let chat: Vec<&Message> = messages
            .iter()
            .filter(|m| {
                matches!(m.role, Role::User | Role::Assistant) && !m.content.trim().is_empty()
            })
            .collect();
        let mut out = Vec::new();
        for window in chat.chunks(self.config.window.max(1)) {
            let items = self
                .window(&ctx.scope.project_id, window)
                .await
                .inspect_err(|_| self.count(|u| u.failures += 1))?;
            out.extend(items.into_iter().map(|i| i.into_memory(ctx, window, now)));
        }
        Ok(out)
    }

    async fn window(&self, project: &str, window: &[&Message]) -> Result<Vec<Item>> {
        self.ask((project, Job::Extraction), &self.request(window), |c| {
            parse_items(c).and_then(|items| cited_within(items, window.len()))
        })
        .await
    }

    /// One request, retried with backoff until a reply passes `parse`. A retry after a
    /// rejected reply is not the same request again (at temperature 0 a model would write
    /// the same reply): it says why the reply was refused and samples a little warmer.
    async fn ask<T>(
        &self,
        who: (&str, Job),
        body: &Request,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let mut last = String::new();
        let mut rejected: Option<String> = None;
        for attempt in 0..=self.config.max_retries {
            if attempt > 0 {
                self.count(|u| u.retries += 1);
                tokio::time::sleep(self.config.backoff(attempt)).await;
            }
            let varied;
            let body = match &rejected {
                None => body,
                Some(why) => {
                    varied = body.retry(attempt, why);
                    &varied
                }
            };
            match self
                .call(who, body)
                .await
                .and_then(|c| parse(&c).map_err(|e| Attempt::Retry(format!("reply: {e}"))))
            {
                Ok(items) => return Ok(items),
                Err(Attempt::Fatal(e)) => return Err(Error::Extraction(format!("llm: {e}"))),
                Err(Attempt::Retry(e)) => {
                    tracing::warn!(attempt, error = %e, "llm extraction attempt failed");
                    // Only a reply the model wrote is worth telling it about; a timeout
                    // or a 5xx is sent again as it was.
                    rejected = e.starts_with("reply:").then(|| e.clone());
                    last = e;
                }
            }
        }
        Err(Error::Extraction(format!(
            "llm: gave up after {} attempts: {last}",
            self.config.max_retries + 1
        )))
    }

    /// One attempt; the reply's content.
    async fn call(&self, who: (&str, Job), body: &Request) -> std::result::Result<String, Attempt> {
        self.count(|u| u.calls += 1);
        self.ledger.record(who.0, who.1, 0, 0);
        let mut req = self.client.post(self.config.completions_url()).json(body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Attempt::Retry(format!(
                    "timed out after {} ms",
                    started.elapsed().as_millis()
                ))
            } else {
                Attempt::Retry(format!("request failed: {e}"))
            }
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Attempt::Retry(format!("reading the reply: {e}")))?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Attempt::Retry(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(format!("HTTP {status}: {}", snippet(&text))));
        }
        let reply: Value = serde_json::from_str(&text)
            .map_err(|e| Attempt::Retry(format!("reply is not JSON: {e}")))?;
        if let Some((p, c)) = crate::llm_usage::reported(&reply) {
            self.ledger.add_tokens(who.0, who.1, p, c);
            self.count(|x| {
                x.prompt_tokens += p;
                x.completion_tokens += c;
            });
        }
        reply["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Attempt::Retry("reply has no choices[0].message.content".into()))
    }

    /// New values for profile fields the transcript states (MemOS's attribute memory that
    /// updates itself): `fields` are `(path, current value)`; the answer names only paths
    /// among them, each with a short text value.
    pub async fn fill_profile(
        &self,
        project: &str,
        messages: &[Message],
        fields: &[(String, Value)],
    ) -> Result<Vec<(String, String)>> {
        let chat: Vec<&Message> = messages
            .iter()
            .filter(|m| {
                matches!(m.role, Role::User | Role::Assistant) && !m.content.trim().is_empty()
            })
            .collect();
        if chat.is_empty() || fields.is_empty() {
            return Ok(vec![]);
        }
        let transcript = json!(self.request(&chat).messages[1]["content"].clone());
        let asked: Vec<Value> = fields
            .iter()
            .map(|(p, v)| json!({"path": p, "current": v}))
            .collect();
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["fields"],
            "properties": {"fields": {"type": "array", "maxItems": fields.len(), "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["path", "value"],
                "properties": {"path": {"type": "string"}, "value": {"type": "string", "maxLength": 300}}
            }}}
        });
        let response_format = if self.config.response_format
            == crate::config::ResponseFormat::JsonObject
        {
            json!({"type": "json_object", "schema": schema})
        } else {
            json!({"type": "json_schema", "json_schema": {"name": "profile", "strict": true, "schema": schema}})
        };
        let body = Request {
            model: self.config.model.clone(),
            temperature: 0.0,
            max_tokens: self.config.max_tokens,
            response_format: raw(&response_format.to_string()),
            messages: vec![
                json!({"role": "system", "content": PROFILE_PROMPT}),
                json!({"role": "user", "content": format!(
                    "Fields: {}\n\nTranscript:\n{}",
                    Value::Array(asked),
                    transcript.as_str().unwrap_or_default()
                )}),
            ],
        };
        let known: Vec<&str> = fields.iter().map(|(p, _)| p.as_str()).collect();
        self.ask((project, Job::Profile), &body, |content| {
            parse_fields(content, &known)
        })
        .await
        .inspect_err(|_| self.count(|u| u.failures += 1))
    }

    fn request(&self, window: &[&Message]) -> Request {
        let transcript: Vec<String> = window
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let who = match (&m.name, m.role) {
                    (Some(n), _) if !n.trim().is_empty() => n.trim().to_string(),
                    (_, Role::User) => "user".into(),
                    _ => "assistant".into(),
                };
                format!(
                    "[{i}] {} {who}: {}",
                    time::to_iso(m.chat_time),
                    m.content.trim()
                )
            })
            .collect();
        // The schema goes out as written (`schema_text`), not through a `Value`, whose map
        // would sort its keys: a grammar-constrained model writes properties in the
        // schema's order, and must write the value before the tags and sources.
        let response_format = if self.config.response_format
            == crate::config::ResponseFormat::JsonObject
        {
            // JSON mode with the schema beside it: how llama-cpp-python constrains a reply
            // (llama.cpp's server reads it too). OpenAI and vLLM take `json_schema`.
            raw(&format!(
                r#"{{"type":"json_object","schema":{}}}"#,
                schema_text(window.len())
            ))
        } else {
            raw(&format!(
                r#"{{"type":"json_schema","json_schema":{{"name":"memories","strict":true,"schema":{}}}}}"#,
                schema_text(window.len())
            ))
        };
        Request {
            model: self.config.model.clone(),
            temperature: 0.0,
            max_tokens: self.config.max_tokens,
            response_format,
            messages: vec![
                json!({"role": "system", "content": PROMPT}),
                json!({"role": "user", "content": transcript.join("\n")}),
            ],
        }
    }
}

/// A chat-completions request of the fine path.
#[derive(Debug, Clone, Serialize)]
struct Request {
    model: String,
    temperature: f32,
    max_tokens: u32,
    /// Sent verbatim, property order kept.
    response_format: Box<serde_json::value::RawValue>,
    messages: Vec<Value>,
}

impl Request {
    /// The request again after a rejected reply: the model is told why, and samples a
    /// little warmer so it does not write the same reply.
    fn retry(&self, attempt: u32, why: &str) -> Request {
        let mut r = self.clone();
        r.temperature = (0.2 * attempt as f32).min(0.7);
        r.messages.push(json!({"role": "user", "content": format!(
            "Your last reply was refused ({}). Reply again with JSON that follows the schema exactly.",
            snippet(why)
        )}));
        r
    }
}

/// JSON text as a raw value; the callers' text is JSON by construction.
fn raw(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text.to_string()).expect("well-formed JSON text")
}

const PROMPT: &str = "You turn a chat transcript into long-term memory items about the user. \
Return only JSON: {\"memories\": [{\"key\": short topic headline, \"value\": one self-contained \
statement in the third person (\"The user ...\", or the speaker's name), \"type\": \"UserMemory\" \
for facts about the user themself or \"LongTermMemory\" for anything else worth remembering, \
\"tags\": up to 8 keywords, \"memory_time\": the date the statement is about as YYYY-MM-DD \
(resolve words like 'yesterday' against the message time) or null, \"preference\": \"like\", \
\"dislike\" or null, \"preference_type\": \"explicit\" when the user said it, \"implicit\" when \
you infer it from what they did or asked, or null, \"reasoning\": for an implicit preference, one \
sentence on why, else null, \"sources\": indexes [n] of the messages it comes from}]}. Write every item \
in the language of the messages it comes from. At most 20 items; skip greetings and small talk.";

const PROFILE_PROMPT: &str = "You keep a user's profile up to date. You get profile fields (a \
path and its current value) and a chat transcript. Return only JSON: {\"fields\": [{\"path\": \
one of the given paths, \"value\": the field's new value, short (a name, a city, a job, a \
phrase), in the language of the messages}]}, only for fields the transcript states or changes \
about the user; leave out every other field. Never guess.";

/// Parses a profile-fill reply: known paths only, each once, with a value.
fn parse_fields(
    content: &str,
    known: &[&str],
) -> std::result::Result<Vec<(String, String)>, String> {
    let v: Value =
        serde_json::from_str(unfence(content)).map_err(|e| format!("content is not JSON: {e}"))?;
    let list = v
        .get("fields")
        .and_then(Value::as_array)
        .ok_or("content has no `fields` array")?;
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let path = f["path"]
            .as_str()
            .ok_or(format!("fields[{i}].path is not a string"))?;
        let value = f["value"]
            .as_str()
            .ok_or(format!("fields[{i}].value is not a string"))?
            .trim();
        if !known.contains(&path) {
            return Err(format!("fields[{i}].path `{path}` was not asked for"));
        }
        if value.is_empty() || value.chars().count() > 300 {
            return Err(format!("fields[{i}].value must hold 1 to 300 characters"));
        }
        if !out.iter().any(|(p, _)| p == path) {
            out.push((path.to_string(), value.to_string()));
        }
    }
    Ok(out)
}

/// The JSON schema sent with `json_schema` requests for a transcript of `messages`
/// messages. Replies are held to its rules, though to [`MAX_ITEMS`] items whatever the
/// transcript's length: the tighter count only keeps a grammar-led model from rambling.
pub fn schema(messages: usize) -> Value {
    serde_json::from_str(&schema_text(messages)).expect("the schema is JSON")
}

/// The schema as sent, properties in the order a model should write them: what the item
/// says first (value, then its headline and type), then when, the preference, and last the
/// tags and sources. Keys and values may not be empty, a date is a date, a source is one of
/// the transcript's `messages` numbers, and there are at most [`ITEMS_PER_MESSAGE`] items a
/// message, so a grammar cannot let a small model write empty items, "someday", message [2]
/// of two, or twenty items about two lines until its tokens run out (SmolLM2-135M did each
/// of the last two in CI).
fn schema_text(messages: usize) -> String {
    let last = messages.saturating_sub(1);
    let cited = messages.clamp(1, MAX_ITEMS);
    let items = (ITEMS_PER_MESSAGE * messages).clamp(1, MAX_ITEMS);
    format!(
        r#"{{"type":"object","additionalProperties":false,"required":["memories"],"properties":{{"memories":{{"type":"array","maxItems":{items},"items":{{"type":"object","additionalProperties":false,"required":["value","key","type","memory_time","preference","preference_type","reasoning","tags","sources"],"properties":{{"value":{{"type":"string","minLength":1,"maxLength":{MAX_VALUE}}},"key":{{"type":"string","minLength":1,"maxLength":{MAX_KEY}}},"type":{{"type":"string","enum":["UserMemory","LongTermMemory"]}},"memory_time":{{"type":["string","null"],"pattern":"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$"}},"preference":{{"type":["string","null"],"enum":["like","dislike",null]}},"preference_type":{{"type":["string","null"],"enum":["explicit","implicit",null]}},"reasoning":{{"type":["string","null"],"maxLength":{MAX_REASONING}}},"tags":{{"type":"array","maxItems":{MAX_TAGS},"items":{{"type":"string","maxLength":40}}}},"sources":{{"type":"array","maxItems":{cited},"items":{{"type":"integer","minimum":0,"maximum":{last}}}}}}}}}}}}}}}"#
    )
}

/// One checked item of a reply.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    key: String,
    value: String,
    memory_type: MemoryType,
    tags: Vec<String>,
    memory_time: Option<Millis>,
    preference: Option<String>,
    implicit: bool,
    reasoning: Option<String>,
    sources: Vec<usize>,
}

impl Item {
    fn into_memory(self, ctx: &AddContext, window: &[&Message], now: Millis) -> Memory {
        let mut sources: Vec<Source> = self
            .sources
            .iter()
            .filter_map(|&i| window.get(i))
            .map(|m| Source::from(*m))
            .collect();
        if sources.is_empty() {
            sources = window.iter().map(|m| Source::from(*m)).collect();
        }
        let said = window.last().map_or(now, |m| m.chat_time);
        let mut tags = self.tags;
        if let Some(p) = self.preference {
            tags.push(PREFERENCE_TAG.to_string());
            tags.push(p);
            if self.implicit {
                tags.push(IMPLICIT_TAG.to_string());
            }
        }
        for t in &ctx.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let conversation_id = window.first().map_or_else(
            || ctx.conversation_id.clone(),
            |m| m.conversation_id.clone(),
        );
        Memory {
            id: uuid::Uuid::new_v4().to_string(),
            scope: ctx.scope.clone(),
            conversation_id,
            key: self.key,
            value: self.value,
            memory_type: self.memory_type,
            memory_time: Some(self.memory_time.unwrap_or(said)),
            status: MemoryStatus::Activated,
            confidence: 0.85,
            tags,
            info: ctx.info.clone(),
            agent_id: ctx.agent_id.clone(),
            app_id: ctx.app_id.clone(),
            sources,
            reasoning: self.reasoning,
            create_time: now,
            update_time: now,
        }
    }
}

fn snippet(s: &str) -> String {
    s.chars().take(200).collect()
}

/// A reply's JSON without the Markdown fence `json_object`-only servers sometimes add.
fn unfence(content: &str) -> &str {
    let trimmed = content.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|r| r.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed)
}

/// Parses and checks a reply's content against [`schema`]. Accepts the JSON wrapped in a
/// Markdown fence, which `json_object`-only servers sometimes add.
/// Refuses a reply whose items cite messages the window does not hold: dropping the index
/// would tie the item to the wrong turns (or to all of them) without a word.
fn cited_within(items: Vec<Item>, window: usize) -> std::result::Result<Vec<Item>, String> {
    for (i, item) in items.iter().enumerate() {
        if let Some(s) = item.sources.iter().find(|&&s| s >= window) {
            return Err(format!(
                "memories[{i}]: sources names message [{s}], but the transcript has [0] to [{}]",
                window.saturating_sub(1)
            ));
        }
    }
    Ok(items)
}

fn parse_items(content: &str) -> std::result::Result<Vec<Item>, String> {
    let v: Value =
        serde_json::from_str(unfence(content)).map_err(|e| format!("content is not JSON: {e}"))?;
    let list = v
        .get("memories")
        .and_then(Value::as_array)
        .ok_or("content has no `memories` array")?;
    if list.len() > MAX_ITEMS {
        return Err(format!("{} items, at most {MAX_ITEMS} allowed", list.len()));
    }
    list.iter()
        .enumerate()
        .map(|(i, it)| check_item(it).map_err(|e| format!("memories[{i}]: {e}")))
        .collect()
}

fn check_item(it: &Value) -> std::result::Result<Item, String> {
    let text = |field: &str, max: usize| -> std::result::Result<String, String> {
        let s = it[field]
            .as_str()
            .ok_or(format!("`{field}` must be a string"))?
            .trim()
            .to_string();
        if s.is_empty() {
            return Err(format!("`{field}` is empty"));
        }
        if s.chars().count() > max {
            return Err(format!("`{field}` is longer than {max}"));
        }
        Ok(s)
    };
    let memory_type = match it["type"].as_str() {
        Some("UserMemory") => MemoryType::UserMemory,
        Some("LongTermMemory") => MemoryType::LongTermMemory,
        other => {
            return Err(format!(
                "`type` must be UserMemory or LongTermMemory, not {other:?}"
            ));
        }
    };
    let tags = match &it["tags"] {
        Value::Null => vec![],
        Value::Array(a) if a.len() <= MAX_TAGS => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or("`tags` must hold strings")
            })
            .collect::<std::result::Result<_, _>>()?,
        Value::Array(_) => return Err(format!("more than {MAX_TAGS} tags")),
        Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Object(_) => {
            return Err("`tags` must be an array".into());
        }
    };
    let memory_time = match &it["memory_time"] {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => {
            Some(time::parse_str(s).ok_or(format!("`memory_time` {s:?} is not a date"))?)
        }
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            return Err("`memory_time` must be a string or null".into());
        }
    };
    let preference = match &it["preference"] {
        Value::Null => None,
        Value::String(s) if s == "like" || s == "dislike" => Some(s.clone()),
        other @ Value::Bool(_)
        | other @ Value::Number(_)
        | other @ Value::String(_)
        | other @ Value::Array(_)
        | other @ Value::Object(_) => {
            return Err(format!(
                "`preference` must be like, dislike or null, not {other}"
            ));
        }
    };
    let implicit = match &it["preference_type"] {
        Value::Null => false,
        Value::String(s) if s == "explicit" => false,
        Value::String(s) if s == "implicit" => true,
        other @ Value::Bool(_)
        | other @ Value::Number(_)
        | other @ Value::String(_)
        | other @ Value::Array(_)
        | other @ Value::Object(_) => {
            return Err(format!(
                "`preference_type` must be explicit, implicit or null, not {other}"
            ));
        }
    };
    let reasoning = match &it["reasoning"] {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) if s.chars().count() <= MAX_REASONING => Some(s.trim().to_string()),
        Value::String(_) => return Err(format!("`reasoning` is longer than {MAX_REASONING}")),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            return Err("`reasoning` must be a string or null".into());
        }
    };
    let sources = match &it["sources"] {
        Value::Null => vec![],
        Value::Array(a) if a.len() <= MAX_ITEMS => a
            .iter()
            .map(|n| {
                n.as_u64()
                    .map(|n| n as usize)
                    .ok_or("`sources` must hold indexes")
            })
            .collect::<std::result::Result<_, _>>()?,
        Value::Bool(_)
        | Value::Number(_)
        | Value::String(_)
        | Value::Array(_)
        | Value::Object(_) => return Err("`sources` must be an array of indexes".into()),
    };
    Ok(Item {
        key: text("key", MAX_KEY)?,
        value: text("value", MAX_VALUE)?,
        memory_type,
        tags,
        memory_time,
        preference,
        implicit,
        reasoning,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(extra: Value) -> Value {
        let mut v = json!({"key": "User's food", "value": "The user likes tea.", "type": "UserMemory",
            "tags": ["tea"], "memory_time": null, "preference": "like", "sources": [0]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn replies_are_checked_against_the_schema() {
        let ok = json!({"memories": [item(json!({}))]}).to_string();
        assert_eq!(parse_items(&ok).unwrap()[0].value, "The user likes tea.");
        let fenced = format!("```json\n{ok}\n```");
        assert_eq!(parse_items(&fenced).unwrap().len(), 1);
        for bad in [
            "not json".to_string(),
            json!({"items": []}).to_string(),
            json!({"memories": [item(json!({"type": "Fact"}))]}).to_string(),
            json!({"memories": [item(json!({"value": ""}))]}).to_string(),
            json!({"memories": [item(json!({"memory_time": "someday"}))]}).to_string(),
            json!({"memories": [item(json!({"preference": "love"}))]}).to_string(),
            json!({"memories": [item(json!({"preference_type": "maybe"}))]}).to_string(),
            json!({"memories": [item(json!({"reasoning": "x".repeat(MAX_REASONING + 1)}))]})
                .to_string(),
            json!({"memories": vec![item(json!({})); MAX_ITEMS + 1]}).to_string(),
        ] {
            assert!(parse_items(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_goes_out_value_first_and_refuses_empty_items() {
        let text = schema_text(0);
        let at = |k: &str| text.find(&format!("\"{k}\":{{")).unwrap();
        assert!(at("value") < at("key") && at("key") < at("type") && at("type") < at("tags"));
        assert!(at("preference") < at("sources") && at("reasoning") < at("tags"));
        let item = &schema(2)["properties"]["memories"]["items"];
        assert_eq!(item["properties"]["value"]["minLength"], 1);
        // A source is one of the transcript's messages.
        let source = &item["properties"]["sources"];
        assert_eq!(source["items"]["maximum"], 1);
        assert_eq!(source["maxItems"], 2);
        assert_eq!(schema(2)["properties"]["memories"]["maxItems"], 10);
        assert_eq!(schema(9)["properties"]["memories"]["maxItems"], MAX_ITEMS);
        assert_eq!(item["properties"]["key"]["minLength"], 1);
        assert!(item["properties"]["memory_time"]["pattern"].is_string());
        // The request carries it as written, with a token cap.
        let llm = LlmExtractor::new(LlmConfig::default(), Default::default()).unwrap();
        let sent = serde_json::to_string(&llm.request(&[])).unwrap();
        assert!(sent.contains(&text), "{sent}");
        assert!(sent.contains("\"max_tokens\":2048"), "{sent}");
        // A retry after a refused reply says why and is not the same request.
        let again = serde_json::to_value(llm.request(&[]).retry(1, "reply: empty value")).unwrap();
        assert!(again["temperature"].as_f64().unwrap() > 0.0);
        assert!(
            again["messages"][2]["content"]
                .as_str()
                .unwrap()
                .contains("empty value")
        );
    }

    #[test]
    fn sources_outside_the_window_refuse_the_reply() {
        let reply = json!({"memories": [item(json!({"sources": [0, 3]}))]}).to_string();
        let items = parse_items(&reply).unwrap();
        let err = cited_within(items.clone(), 2).unwrap_err();
        assert!(err.contains("[3]") && err.contains("[0] to [1]"), "{err}");
        assert_eq!(cited_within(items, 4).unwrap().len(), 1);
    }

    #[test]
    fn every_list_in_the_schema_is_bounded() {
        fn walk(v: &Value, path: &str) {
            if v["type"] == "array" {
                assert!(v.get("maxItems").is_some(), "{path} has no maxItems");
            }
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    walk(x, &format!("{path}.{k}"));
                }
            }
        }
        walk(&schema(3), "schema");
    }
}
