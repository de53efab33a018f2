//! `chat`: the request the MemOS SDK's `chat()` sends, every field of it.

use memos_core::Error;
use memos_core::filter::Filter;
use memos_core::service::{ChatInput, SearchInput, SearchMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{only_default, plain_user, required, subject};
use super::knowledge::kb_select;

/// `chat` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The end user (or `agent_id` alone: the agent's own memory).
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The conversation; its recent turns go into the prompt.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub conversation_id: Option<String>,
    /// The user's message.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub query: Option<String>,
    /// Instructions that replace the default ones.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// A model the configuration allows.
    #[serde(default)]
    pub model_name: Option<String>,
    /// Knowledge bases whose chunks may go into the prompt: ids, `[]` or `"all"`.
    #[serde(default)]
    pub knowledgebase_ids: Option<Value>,
    /// Which memories may go into the prompt.
    #[serde(default)]
    pub filter: Option<Value>,
    /// How many memories go into the prompt (default 6).
    #[serde(default)]
    pub memory_limit_number: Option<usize>,
    /// Whether the user's preferences go into the prompt (default true).
    #[serde(default)]
    pub include_preference: Option<bool>,
    /// How many preferences (default 6).
    #[serde(default)]
    pub preference_limit_number: Option<usize>,
    /// Least relevance a memory needs to go into the prompt.
    #[serde(default)]
    pub relativity: Option<f32>,
    /// Longest answer, in tokens (default 8192).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (default 0.7).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling (default 0.95).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Add the question and the answer to memory (default true).
    #[serde(default)]
    pub add_message_on_answer: Option<bool>,
    /// That add's mode (default true: a task).
    #[serde(default)]
    pub async_mode: Option<bool>,
    /// Tags of that add.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Metadata of that add.
    #[serde(default)]
    pub info: Option<Map<String, Value>>,
    /// The app.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The agent the user speaks through, or alone the subject.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// `true`: the question and answer, once added to memory, are also written into the
    /// project's public knowledge base (`kb_public`).
    #[serde(default)]
    pub allow_public: Option<bool>,
    /// Knowledge bases of the project that the question and answer, once added to
    /// memory, are also written into (each must exist).
    #[serde(default)]
    pub allow_knowledgebase_ids: Option<Vec<String>>,
    /// Tool memories in the prompt: not yet, so only `false`.
    #[serde(default)]
    pub include_tool_memory: Option<bool>,
    /// How many tool memories; changes nothing while they are not used.
    #[serde(default)]
    pub tool_memory_limit_number: Option<usize>,
    /// Web search: memos has no network, so only `false`.
    #[serde(default)]
    pub internet_search: Option<bool>,
    /// MemOS playground switch: only `false`.
    #[serde(default)]
    pub force_stop: Option<bool>,
    /// MemOS open-source cube switch: only `false`.
    #[serde(default)]
    pub use_mem_os_cube: Option<bool>,
    /// Where the call comes from (a label).
    #[serde(default)]
    pub source: Option<String>,
}

impl ChatRequest {
    /// Checks and converts to the domain request, and whether to stream.
    pub fn into_input(self, default_limit: usize) -> Result<(ChatInput, bool), Error> {
        let _ = (self.source, self.tool_memory_limit_number);
        only_default(
            "include_tool_memory",
            &self.include_tool_memory,
            &[false],
            "chat does not put tool memories in the prompt yet",
        )?;
        only_default(
            "internet_search",
            &self.internet_search,
            &[false],
            "memos does not search the web",
        )?;
        only_default(
            "force_stop",
            &self.force_stop,
            &[false],
            "a playground switch",
        )?;
        only_default(
            "use_mem_os_cube",
            &self.use_mem_os_cube,
            &[false],
            "memos has no MemOS cubes",
        )?;
        // As in an add: the user is the subject, `agent_id` the agent they speak through;
        // with no user, the agent itself.
        let user_id = match self.user_id.as_ref().filter(|u| !u.trim().is_empty()) {
            Some(_) => required(self.user_id, "user_id")?,
            None => subject(None, self.agent_id.clone())?,
        };
        let query = required(self.query, "query")?;
        let conversation_id = required(self.conversation_id, "conversation_id")?;
        let filter = match self.filter {
            None => None,
            Some(v) => Filter::parse(&v)?,
        };
        let input = ChatInput {
            search: SearchInput {
                user_id,
                query,
                conversation_id: Some(conversation_id),
                limit: Some(self.memory_limit_number.unwrap_or(default_limit)),
                filter,
                query_time: None,
                mode: SearchMode::Hybrid,
                since: None,
            },
            system_prompt: self.system_prompt,
            model: self.model_name,
            max_tokens: self.max_tokens.unwrap_or(8192),
            temperature: Some(self.temperature.unwrap_or(0.7)),
            top_p: Some(self.top_p.unwrap_or(0.95)),
            include_preference: self.include_preference.unwrap_or(true),
            preference_limit: self.preference_limit_number.unwrap_or(6),
            relativity: self.relativity.unwrap_or(0.0),
            remember: self.add_message_on_answer.unwrap_or(true),
            async_mode: self.async_mode.unwrap_or(true),
            tags: self.tags.unwrap_or_default(),
            info: self.info.unwrap_or_default(),
            agent_id: self.agent_id,
            app_id: self.app_id,
            knowledge: kb_select(self.knowledgebase_ids, "knowledgebase_ids")?,
            share_with: self.allow_knowledgebase_ids.unwrap_or_default(),
            public: self.allow_public.unwrap_or(false),
        };
        Ok((input, self.stream.unwrap_or(false)))
    }
}

/// `chat`'s answer (and the `data` of a stream's `end` event).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatData {
    /// What the model said.
    pub response: String,
    /// The model that said it.
    pub model: String,
    /// How many memories and preferences the prompt carried.
    pub memories_used: usize,
    /// With `add_message_on_answer` (the default): the add that remembered the exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// That add's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}
