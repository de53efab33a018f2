//! The MCP tools: each one's arguments (their JSON schema is what the model reads, so the
//! doc comments are written for it) and the API request they become.
//!
//! Arguments are strict (`additionalProperties: false`): a misspelt field is an error the
//! model sees and can correct, never a silently ignored filter or limit.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::api::Failure;

/// One API request a tool call becomes.
#[derive(Debug)]
pub(crate) struct Call {
    /// Under the API prefix; always a POST.
    pub(crate) path: String,
    pub(crate) body: Value,
    /// What to keep of the answer's `data`.
    pub(crate) keep: Keep,
}

/// A tool's cut of the API's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keep {
    /// The data as the API gives it.
    All,
    /// Of a search answer, only the knowledge-base chunks, at most this many.
    KnowledgeChunks(usize),
}

impl Keep {
    pub(crate) fn apply(self, data: Value) -> Value {
        match self {
            Keep::All => data,
            Keep::KnowledgeChunks(limit) => {
                let chunks: Vec<Value> = data
                    .get("memory_detail_list")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|m| is_chunk(m))
                    .take(limit)
                    .cloned()
                    .collect();
                json!({ "knowledge_detail_list": chunks })
            }
        }
    }
}

/// Whether a search result is a knowledge-base chunk: it belongs to no user or agent, and
/// its `info` names its base (a user's memory may carry any `info`, never a null owner).
fn is_chunk(m: &Value) -> bool {
    m.get("user_id").is_some_and(Value::is_null)
        && m.get("agent_id").is_some_and(Value::is_null)
        && m.pointer("/info/knowledgebase_id")
            .is_some_and(Value::is_string)
}

/// Who said a message.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
    System,
}

/// One message of a conversation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Message {
    /// Who said it: `user`, `assistant` or `system`.
    role: Role,
    /// What was said, verbatim.
    #[schemars(length(min = 1))]
    content: String,
    /// When it was said: ISO 8601 (`2025-06-01T09:30:00Z`) or a date; default now. Give it
    /// when known: "last week" in the text is resolved against it.
    #[serde(default)]
    chat_time: Option<String>,
}

/// Arguments of `add_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddMemory {
    /// The end user whose memory this is.
    #[schemars(length(min = 1))]
    user_id: String,
    /// The turns to remember, oldest first. Pass what the user actually said (and the
    /// assistant's replies for context); memos extracts the facts and preferences itself.
    #[schemars(length(min = 1))]
    messages: Vec<Message>,
    /// The conversation the turns belong to (default `mcp`).
    #[serde(default)]
    conversation_id: Option<String>,
    /// Tags given to every memory of this add.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// `true` (default): answer once the memories are searchable, with their ids.
    /// `false`: answer at once with a task id and process in the background.
    #[serde(default)]
    wait: Option<bool>,
}

/// Arguments of `search_memories`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchMemories {
    /// The end user whose memories to search.
    #[schemars(length(min = 1))]
    user_id: String,
    /// What to look for: the user's message as they wrote it works best.
    #[schemars(length(min = 1))]
    query: String,
    /// The current conversation: its recent memories rank a little higher.
    #[serde(default)]
    conversation_id: Option<String>,
    /// How many memories (default 6, at most the server's `search.max_limit`, 25 unless
    /// configured).
    #[serde(default)]
    #[schemars(range(min = 1))]
    limit: Option<u32>,
    /// A MemOS filter, for example `{"and": [{"tags": {"contains": "work"}},
    /// {"create_time": {"gte": "2025-01-01"}}]}`.
    #[serde(default)]
    filter: Option<Map<String, Value>>,
    /// Search as of this time (ISO 8601): only what was known and current then.
    #[serde(default)]
    query_time: Option<String>,
    /// Also return the user's preferences relevant to the query (default true).
    #[serde(default)]
    include_preference: Option<bool>,
}

/// Arguments of `list_memories`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListMemories {
    /// The end user.
    #[schemars(length(min = 1))]
    user_id: String,
    /// Page number, from 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    page: Option<u32>,
    /// Memories per page.
    #[serde(default)]
    #[schemars(range(min = 1))]
    size: Option<u32>,
    /// A MemOS filter (as in `search_memories`).
    #[serde(default)]
    filter: Option<Map<String, Value>>,
    /// Also list the user's preferences (default true).
    #[serde(default)]
    include_preference: Option<bool>,
}

/// Arguments of `get_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetMemory {
    /// The memory's id, as a search or list gave it.
    #[schemars(length(min = 1))]
    memory_id: String,
    /// Only if it is this user's.
    #[serde(default)]
    user_id: Option<String>,
}

/// A memory's state.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    Activated,
    Archived,
}

/// Arguments of `update_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMemory {
    /// The memory's id.
    #[schemars(length(min = 1))]
    memory_id: String,
    /// Only if it is this user's.
    #[serde(default)]
    user_id: Option<String>,
    /// The corrected text.
    #[serde(default)]
    memory_value: Option<String>,
    /// The corrected headline.
    #[serde(default)]
    memory_key: Option<String>,
    /// The new tags (replacing the old ones).
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// `archived` to keep it out of searches without deleting it, `activated` to restore.
    #[serde(default)]
    status: Option<Status>,
}

/// Arguments of `delete_memories`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteMemories {
    /// The memories to delete, by id. (A whole user is erased through the API only.)
    #[schemars(length(min = 1))]
    memory_ids: Vec<String>,
    /// Only those that are this user's.
    #[serde(default)]
    user_id: Option<String>,
    /// `true`: erase them and their history for good; `false` (default): mark them
    /// deleted, kept in their history.
    #[serde(default)]
    hard: Option<bool>,
}

/// Arguments of `add_feedback`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddFeedback {
    /// The end user.
    #[schemars(length(min = 1))]
    user_id: String,
    /// The conversation the correction was made in.
    #[schemars(length(min = 1))]
    conversation_id: String,
    /// The user's correction in their words, e.g. "No, I moved to Berlin last year".
    #[schemars(length(min = 1))]
    feedback_content: String,
}

/// Arguments of `get_profile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetProfile {
    /// The end user.
    #[schemars(length(min = 1))]
    user_id: String,
}

/// Arguments of `search_knowledge_bases`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchKnowledge {
    /// The end user asking (the search runs in their scope).
    #[schemars(length(min = 1))]
    user_id: String,
    /// What to look for.
    #[schemars(length(min = 1))]
    query: String,
    /// The knowledge bases to search, by id; omitted: all of the project's.
    #[serde(default)]
    knowledgebase_ids: Option<Vec<String>>,
    /// How many chunks (default 6, at most 25).
    #[serde(default)]
    #[schemars(range(min = 1, max = 25))]
    limit: Option<u32>,
}

/// The tools, as `tools/list` shows them.
pub(crate) fn all() -> Vec<Tool> {
    fn tool<T: JsonSchema + 'static>(name: &'static str, description: &'static str) -> Tool {
        Tool::new(name, description, schema::<T>())
    }
    let read = |t: Tool| t.with_annotations(ToolAnnotations::new().read_only(true));
    let write = |t: Tool, destructive: bool| {
        t.with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(destructive),
        )
    };
    vec![
        write(
            tool::<AddMemory>(
                "add_memory",
                "Remember a conversation: memos extracts the user's facts, preferences and \
                 events from the messages and stores them as memories of that user. Call it \
                 with what the user said whenever they share something worth remembering.",
            ),
            false,
        ),
        read(tool::<SearchMemories>(
            "search_memories",
            "Find the user's memories most relevant to a message, ranked, with their dates \
             and relevance, plus the preferences that should shape the answer. Call it before \
             answering anything that may depend on what the user said earlier.",
        )),
        read(tool::<ListMemories>(
            "list_memories",
            "List a user's memories page by page, newest first (no ranking).",
        )),
        read(tool::<GetMemory>(
            "get_memory",
            "One memory with its history: how it was created, merged, updated or \
             superseded, with the text before and after each change.",
        )),
        write(
            tool::<UpdateMemory>(
                "update_memory",
                "Correct a memory's text, headline, tags or status. The old version stays \
                 in its history.",
            ),
            false,
        ),
        write(
            tool::<DeleteMemories>(
                "delete_memories",
                "Delete memories by id (soft by default; `hard` erases them for good).",
            ),
            true,
        ),
        write(
            tool::<AddFeedback>(
                "add_feedback",
                "Pass on the user's correction of what the assistant remembered (\"that's \
                 wrong, I live in Berlin now\"): memos updates or archives the memories it \
                 contradicts.",
            ),
            false,
        ),
        read(tool::<GetProfile>(
            "get_profile",
            "The user's profile: what memos knows about them, grouped by topic (home, work, \
             food, ...), plus their structured profiles.",
        )),
        read(tool::<SearchKnowledge>(
            "search_knowledge_bases",
            "Search the project's knowledge bases (uploaded documents) for passages relevant \
             to a query; each result names its file and chunk.",
        )),
    ]
}

/// The JSON schema of a tool's arguments.
fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_type::<T>()
}

/// The API request a call of `name` with `args` becomes; `None` for a tool that does not
/// exist, an error (for the model to read) for arguments that do not fit the schema.
pub(crate) fn plan(name: &str, args: JsonObject) -> Option<Result<Call, Failure>> {
    Some(match name {
        "add_memory" => parse(args).map(|a: AddMemory| {
            let messages: Vec<Value> = a
                .messages
                .into_iter()
                .map(|m| {
                    let mut v = json!({"role": m.role, "content": m.content});
                    if let Some(t) = m.chat_time {
                        v["chat_time"] = json!(t);
                    }
                    v
                })
                .collect();
            let mut body = json!({
                "user_id": a.user_id,
                "conversation_id": a.conversation_id.unwrap_or_else(|| "mcp".into()),
                "messages": messages,
                "async_mode": !a.wait.unwrap_or(true),
            });
            set(&mut body, "tags", a.tags);
            post("add/message", body)
        }),
        "search_memories" => parse(args).map(|a: SearchMemories| {
            let mut body = json!({"user_id": a.user_id, "query": a.query});
            set(&mut body, "conversation_id", a.conversation_id);
            set(&mut body, "memory_limit_number", a.limit);
            set(&mut body, "filter", a.filter);
            set(&mut body, "query_time", a.query_time);
            set(&mut body, "include_preference", a.include_preference);
            post("search/memory", body)
        }),
        "list_memories" => parse(args).map(|a: ListMemories| {
            let mut body = json!({"user_id": a.user_id});
            set(&mut body, "page", a.page);
            set(&mut body, "size", a.size);
            set(&mut body, "filter", a.filter);
            set(&mut body, "include_preference", a.include_preference);
            post("get/memory", body)
        }),
        "get_memory" => parse(args).map(|a: GetMemory| {
            let mut body = json!({"memory_id": a.memory_id});
            set(&mut body, "user_id", a.user_id);
            post("get/history", body)
        }),
        "update_memory" => parse(args).map(|a: UpdateMemory| {
            let mut body = json!({"memory_id": a.memory_id});
            set(&mut body, "user_id", a.user_id);
            set(&mut body, "memory_value", a.memory_value);
            set(&mut body, "memory_key", a.memory_key);
            set(&mut body, "tags", a.tags);
            set(&mut body, "status", a.status);
            post("update/memory", body)
        }),
        "delete_memories" => parse(args).and_then(|a: DeleteMemories| {
            // An empty list must not reach an API where other fields widen a delete.
            if a.memory_ids.is_empty() {
                return Err(Failure("memory_ids must name at least one memory".into()));
            }
            let mut body = json!({"memory_ids": a.memory_ids});
            set(&mut body, "user_id", a.user_id);
            set(&mut body, "hard", a.hard);
            Ok(post("delete/memory", body))
        }),
        "add_feedback" => parse(args).map(|a: AddFeedback| {
            post(
                "add/feedback",
                json!({
                    "user_id": a.user_id,
                    "conversation_id": a.conversation_id,
                    "feedback_content": a.feedback_content,
                }),
            )
        }),
        "get_profile" => {
            parse(args).map(|a: GetProfile| post("get/profile", json!({"user_id": a.user_id})))
        }
        "search_knowledge_bases" => parse(args).map(|a: SearchKnowledge| {
            let limit = a.limit.unwrap_or(6).clamp(1, 25) as usize;
            let mut call = post(
                "search/memory",
                json!({
                    "user_id": a.user_id,
                    "query": a.query,
                    // The user's own memories compete for the same places: ask for the
                    // most the API gives and keep the chunks.
                    "memory_limit_number": 25,
                    "include_preference": false,
                    "knowledgebase_ids": a.knowledgebase_ids.map_or(json!("all"), |ids| json!(ids)),
                }),
            );
            call.keep = Keep::KnowledgeChunks(limit);
            call
        }),
        _ => return None,
    })
}

fn post(path: &str, body: Value) -> Call {
    Call {
        path: format!("/{path}"),
        body,
        keep: Keep::All,
    }
}

/// Sets `key` when the argument was given, so the API's own default applies otherwise.
fn set<T: serde::Serialize>(body: &mut Value, key: &str, v: Option<T>) {
    if let Some(v) = v {
        body[key] = json!(v);
    }
}

fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(args)).map_err(|e| Failure(format!("arguments: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_tool_has_a_strict_object_schema_and_a_plan() {
        for t in all() {
            let s = &t.input_schema;
            assert_eq!(s.get("type"), Some(&json!("object")), "{}", t.name);
            assert_eq!(
                s.get("additionalProperties"),
                Some(&json!(false)),
                "{}",
                t.name
            );
            assert!(plan(&t.name, JsonObject::new()).is_some(), "{}", t.name);
        }
        assert!(plan("no_such_tool", JsonObject::new()).is_none());
    }

    #[test]
    fn arguments_become_the_api_request() {
        let c = plan(
            "add_memory",
            args(json!({"user_id": "u", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.path, "/add/message");
        let b = c.body;
        assert_eq!(b["async_mode"], json!(false));
        assert_eq!(b["conversation_id"], json!("mcp"));
        assert_eq!(b["messages"][0]["role"], json!("user"));
        assert!(b.get("tags").is_none());

        let c = plan(
            "search_memories",
            args(json!({"user_id": "u", "query": "q", "limit": 3})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.body["memory_limit_number"], json!(3));
    }

    #[test]
    fn bad_arguments_are_errors_the_model_can_read() {
        let e = plan(
            "search_memories",
            args(json!({"user_id": "u", "qeury": "x"})),
        )
        .unwrap()
        .unwrap_err();
        assert!(e.0.contains("qeury"), "{}", e.0);
        let e = plan("delete_memories", args(json!({"memory_ids": []})))
            .unwrap()
            .unwrap_err();
        assert!(e.0.contains("at least one"), "{}", e.0);
    }

    #[test]
    fn a_knowledge_search_keeps_only_chunks() {
        let chunk = |id: &str| json!({"id": id, "user_id": null, "agent_id": null, "info": {"knowledgebase_id": "kb1"}});
        let data = json!({"memory_detail_list": [
            // A user's memory whose free-form info happens to name a base.
            {"id": "a", "user_id": "u", "agent_id": null, "info": {"knowledgebase_id": "kb1"}},
            chunk("b"),
            chunk("c"),
        ]});
        let kept = Keep::KnowledgeChunks(1).apply(data);
        assert_eq!(kept, json!({"knowledge_detail_list": [chunk("b")]}));
    }
}
