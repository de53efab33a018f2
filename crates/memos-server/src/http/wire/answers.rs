//! Answers as MemOS shapes them: memories, preferences, messages, tasks, history.

use memos_core::ingest::fast::TOOL_FAILED_TAG;
use memos_core::ingest::llm::IMPLICIT_TAG;
use memos_core::model::{
    Memory, MemoryChange, Message, Source, Task, UserSummary, subject_agent, subject_kb,
};
use memos_core::service::SearchHit;
use memos_core::time;
use serde::Serialize;
use serde_json::{Map, Value};

/// One entry of `preference_detail_list`, as MemOS shapes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// One history entry on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeDetail {
    /// ISO 8601.
    time: String,
    /// merged, superseded, supersedes, updated, deleted, outdated.
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

/// An extracted fact on the wire: what an add would store, without ids.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// A memory's source message on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    /// Why a search ranked it here (only with `explain: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<ExplainDetail>,
}

/// Why a search result ranked where it did (our extension, `search/memory` with
/// `explain: true`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExplainDetail {
    /// BM25's view: rank (1-based), score, calibrated relevance; null when it did not find it.
    lexical: Option<SignalDetail>,
    /// The embeddings' view (score: the cosine); null when they did not find it.
    dense: Option<SignalDetail>,
    /// The date window the query names, `[start, end)` in ISO 8601; null when none.
    date_window: Option<[String; 2]>,
    /// Whether it was found again inside that window, which lifts it.
    in_window: bool,
    /// Whether the earlier lines of a dialogue-shaped query found it too, which lifts it.
    in_context: bool,
    /// The current conversation's boost (1: none).
    conversation_boost: f32,
    /// The fused score results are sorted by, boost included.
    fused_score: f32,
    /// A verbatim turn whose fact was superseded: the memory that replaced it, placed right
    /// above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    outdated_by: Option<String>,
    /// The replacement placed above that outdated turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<String>,
}

/// One retriever's view of a result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalDetail {
    rank: usize,
    score: f32,
    relativity: f32,
}

impl From<&memos_core::service::Explain> for ExplainDetail {
    fn from(e: &memos_core::service::Explain) -> Self {
        let signal = |s: &memos_core::service::Signal| SignalDetail {
            rank: s.rank,
            score: s.score,
            relativity: s.relativity,
        };
        Self {
            lexical: e.lexical.as_ref().map(signal),
            dense: e.dense.as_ref().map(signal),
            date_window: e
                .date_window
                .map(|(a, b)| [time::to_iso(a), time::to_iso(b)]),
            in_window: e.in_window,
            in_context: e.in_context,
            conversation_boost: e.boost,
            fused_score: e.fused,
            outdated_by: e.outdated_by.clone(),
            replaces: e.replaces.clone(),
        }
    }
}

impl MemoryDetail {
    /// A search result with its explanation, when one was asked for and exists.
    pub fn explained(h: SearchHit, explain: bool) -> Self {
        let why = explain
            .then(|| h.explain.as_deref().map(ExplainDetail::from))
            .flatten();
        let mut d = Self::from(h);
        d.explain = why;
        d
    }
}

impl From<Memory> for MemoryDetail {
    fn from(m: Memory) -> Self {
        // An agent's own memory answers with the agent as its subject, never the internal
        // scope id.
        // A knowledge base's chunk belongs to no user: its base and file are in `info`.
        let (user_id, agent_id) = match subject_agent(&m.scope.user_id) {
            Some(agent) => (None, Some(agent.to_string())),
            None if subject_kb(&m.scope.user_id).is_some() => (None, None),
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
            explain: None,
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
            explain: None,
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

/// One subject of a project in `get/users`: a user, an agent's own memory, or a knowledge
/// base's chunks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    /// The user; null for an agent's own memory and a knowledge base.
    pub user_id: Option<String>,
    /// The agent, when the memory is the agent's own.
    pub agent_id: Option<String>,
    /// The knowledge base, when these are its chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knowledgebase_id: Option<String>,
    /// How many memories it holds (soft-deleted ones not counted).
    pub memory_count: usize,
    /// When any of them last changed, epoch ms.
    pub last_update_time: i64,
}

impl From<UserSummary> for UserDetail {
    fn from(u: UserSummary) -> Self {
        let knowledgebase_id = subject_kb(&u.user_id).map(str::to_string);
        let (user_id, agent_id) = match subject_agent(&u.user_id) {
            Some(agent) => (None, Some(agent.to_string())),
            None if knowledgebase_id.is_some() => (None, None),
            None => (Some(u.user_id), None),
        };
        Self {
            user_id,
            agent_id,
            knowledgebase_id,
            memory_count: u.memories,
            last_update_time: u.last_update,
        }
    }
}

/// One tool trajectory in `tool_memory_detail_list`, in MemOS's shape (`tool_type`,
/// `tool_value`, `tool_used_status`, `experience`) with memos' usual fields beside it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolMemoryDetail {
    /// Memory id.
    pub id: String,
    /// Always `ToolTrajectoryMemory`: memos keeps no tool schemas.
    pub tool_type: &'static str,
    /// The request, the call and the tool's answer.
    pub tool_value: String,
    /// The tool used, and whether it answered with an error.
    pub tool_used_status: Vec<ToolUsedStatus>,
    /// What was learnt from the trajectory; empty without an LLM.
    pub experience: String,
    /// The conversation it happened in.
    pub conversation_id: String,
    /// When the call was made (ISO 8601).
    pub memory_time: Option<String>,
    /// Epoch ms.
    pub create_time: i64,
    /// Epoch ms.
    pub update_time: i64,
    /// Tags: `tool`, the tool's name, `tool_failed` when it failed, the request's tags.
    pub tags: Vec<String>,
    /// The call, the answer and the request, as chat-log references.
    pub sources: Vec<SourceDetail>,
    /// Relevance to the query in [0, 1]; 1 in lists.
    pub relativity: f32,
}

/// MemOS's `tool_used_status` entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolUsedStatus {
    /// The tool's name.
    pub used_tool: String,
    /// `""` when the tool answered, `"tool_error"` when its answer reported an error.
    pub error_type: &'static str,
    /// 1 or 0 for one call.
    pub success_rate: f32,
    /// What was learnt about the tool; empty without an LLM.
    pub tool_experience: String,
}

impl ToolMemoryDetail {
    fn new(m: Memory, relativity: f32) -> Self {
        let tool = m.key.strip_prefix("Tool: ").unwrap_or(&m.key).to_string();
        let failed = m.tags.iter().any(|t| t == TOOL_FAILED_TAG);
        Self {
            id: m.id,
            tool_type: "ToolTrajectoryMemory",
            tool_value: m.value,
            tool_used_status: vec![ToolUsedStatus {
                used_tool: tool,
                error_type: if failed { "tool_error" } else { "" },
                success_rate: if failed { 0.0 } else { 1.0 },
                tool_experience: String::new(),
            }],
            experience: String::new(),
            conversation_id: m.conversation_id,
            memory_time: m.memory_time.map(time::to_iso),
            create_time: m.create_time,
            update_time: m.update_time,
            tags: m.tags,
            sources: m.sources.iter().map(SourceDetail::from).collect(),
            relativity,
        }
    }
}

impl From<SearchHit> for ToolMemoryDetail {
    fn from(h: SearchHit) -> Self {
        Self::new(h.memory, h.relativity)
    }
}

impl From<Memory> for ToolMemoryDetail {
    fn from(m: Memory) -> Self {
        Self::new(m, 1.0)
    }
}

/// `add/message`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddData {
    /// Always true on success.
    pub success: bool,
    /// The add's task: follow an async add with `get/status`.
    pub task_id: String,
    /// `running` (async: not yet searchable) or `completed` (sync: searchable now).
    pub status: &'static str,
    /// With an LLM: the task that refines a sync add's fast memories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine_task_id: Option<String>,
    /// A sync add's memories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory_ids: Vec<String>,
}

/// `search/memory`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchData {
    /// The memories (and knowledge-base chunks) most relevant to the query, best first.
    pub memory_detail_list: Vec<MemoryDetail>,
    /// The preferences below as one instruction for a prompt.
    pub preference_note: String,
    /// The user's preferences relevant to the query.
    pub preference_detail_list: Vec<PreferenceDetail>,
    /// With `include_tool_memory`: tool trajectories relevant to the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_memory_detail_list: Option<Vec<ToolMemoryDetail>>,
    /// The subject's profiles, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_detail_list: Option<Vec<super::ProfileDetail>>,
    /// With `include_skill`: memos keeps no skills yet, so empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub skill_detail_list: Option<Vec<Value>>,
}

/// `get/memory`'s answer: one page of the subject's memories, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemoryPage {
    /// The page.
    pub memory_detail_list: Vec<MemoryDetail>,
    /// The subject's current preferences (with `include_preference`, the default).
    pub preference_detail_list: Vec<PreferenceDetail>,
    /// Memories in all pages.
    pub total: usize,
    /// The page size.
    pub size: usize,
    /// This page's number, from 1.
    pub current: usize,
    /// How many pages.
    pub pages: usize,
    /// The subject's profiles, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_detail_list: Option<Vec<super::ProfileDetail>>,
    /// With `include_tool_memory`: the newest tool trajectories, up to `size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_memory_detail_list: Option<Vec<ToolMemoryDetail>>,
}

/// `get/message`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageList {
    /// The conversation's most recent messages, newest last.
    pub message_detail_list: Vec<MessageDetail>,
}

/// `get/users`' answer: one page of the project's users and agents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    /// The page, most recently changed first.
    pub user_detail_list: Vec<UserDetail>,
    /// Users in all pages.
    pub total: usize,
    /// The page size.
    pub size: usize,
    /// This page's number, from 1.
    pub current: usize,
    /// How many pages.
    pub pages: usize,
}

/// `get/conversations`' answer: one page of a user's conversations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationPage {
    /// The page, the conversation with the latest message first.
    pub conversation_detail_list: Vec<ConversationDetail>,
    /// Conversations in all pages.
    pub total: usize,
    /// The page size.
    pub size: usize,
    /// This page's number, from 1.
    pub current: usize,
    /// How many pages.
    pub pages: usize,
}

/// One conversation, summed up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    conversation_id: String,
    message_count: usize,
    /// ISO 8601.
    first_chat_time: String,
    /// ISO 8601.
    last_chat_time: String,
}

impl From<memos_core::model::ConversationSummary> for ConversationDetail {
    fn from(c: memos_core::model::ConversationSummary) -> Self {
        Self {
            conversation_id: c.conversation_id,
            message_count: c.messages,
            first_chat_time: time::to_iso(c.first_chat_time),
            last_chat_time: time::to_iso(c.last_chat_time),
        }
    }
}

/// `delete/memory`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteData {
    /// Always true on success.
    pub success: bool,
    /// How many memories went.
    pub deleted_count: usize,
    /// Whether they were removed for good (`true`) or marked deleted.
    pub hard: bool,
}

/// `update/memory`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdateData {
    /// Always true on success.
    pub success: bool,
    /// The memory as it is now.
    pub memory: MemoryDetail,
}

/// `add/feedback`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackData {
    /// Always true on success.
    pub success: bool,
    /// The feedback's task.
    pub task_id: String,
    /// `completed`: applied and searchable.
    pub status: &'static str,
    /// The memories the correction wrote or changed.
    pub memory_ids: Vec<String>,
    /// With an LLM: the task that refines them.
    pub refine_task_id: Option<String>,
}

/// `get/history`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryData {
    /// The memory as it is now.
    pub memory: MemoryDetail,
    /// What happened to it, oldest first.
    pub history: Vec<ChangeDetail>,
}

/// `get/profile`'s answer: the subject's profile facts grouped by topic, and its profiles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileData {
    /// The subject.
    pub user_id: String,
    /// Profile facts in all topics.
    pub total: usize,
    /// The topics.
    pub profile: Vec<ProfileTopic>,
    /// The subject's profiles (from templates).
    pub profile_detail_list: Vec<super::ProfileDetail>,
}

/// One topic of a profile.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileTopic {
    /// The topic, e.g. "User's food preferences".
    pub memory_key: String,
    /// Its facts.
    pub memory_detail_list: Vec<MemoryDetail>,
}

/// `extract/memory`'s answer: what an add would remember, stored nowhere. Each list only
/// when asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Extracted {
    /// The facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Vec<ExtractedMemory>>,
    /// The preferences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<Vec<ExtractedPreference>>,
}

/// `rerank`'s answer, in MemOS's shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reranked {
    /// This ranking's id.
    pub id: String,
    /// The model that ranked (memos' own ranking answers for MemOS's reranker names).
    pub model: String,
    /// The documents, most relevant first.
    pub results: Vec<RerankResult>,
}

/// One ranked document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RerankResult {
    /// Its place in the request's `documents`.
    pub index: usize,
    /// The document.
    pub document: RerankDocument,
    /// How relevant it is, in [0, 1] (search's `relativity`).
    pub relevance_score: f32,
}

/// A ranked document's text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RerankDocument {
    /// The text.
    pub text: String,
}
