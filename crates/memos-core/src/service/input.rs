//! The service's request and answer types, and the checks every request's ids go through.

use serde_json::{Map, Value};

use crate::error::{Error, InputErrorKind, Result};
use crate::filter::Filter;
use crate::model::*;

use super::MemoryService;

impl MemoryService {
    pub(super) fn check_id(&self, field: &str, value: &str, kind: InputErrorKind) -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::required(field));
        }
        let max = self.config.limits.max_id_chars;
        if value.chars().count() > max {
            return Err(Error::input(
                field,
                format!("{field} cannot exceed {max} characters"),
                kind,
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("{field} cannot contain control characters"),
            ));
        }
        Ok(())
    }

    pub(super) fn check_user(&self, user_id: &str) -> Result<()> {
        if let Some(kb) = subject_kb(user_id) {
            return self.check_id("knowledgebase_id", kb, InputErrorKind::Invalid);
        }
        match subject_agent(user_id) {
            Some(agent) => self.check_id("agent_id", agent, InputErrorKind::Invalid),
            None => self.check_id("user_id", user_id, InputErrorKind::UserIdTooLong),
        }
    }

    /// Checks a list of messages against the limits: count, size, ids.
    pub(super) fn check_messages(&self, messages: &[NewMessage]) -> Result<()> {
        let limits = &self.config.limits;
        if messages.is_empty() {
            return Err(Error::input(
                "messages",
                "messages must hold at least one message",
                InputErrorKind::Empty,
            ));
        }
        if messages.len() > limits.max_messages {
            return Err(Error::invalid(
                "messages",
                format!("at most {} messages per add", limits.max_messages),
            ));
        }
        let mut total = 0usize;
        for (i, m) in messages.iter().enumerate() {
            if m.content.trim().is_empty() {
                return Err(Error::required(format!("messages[{i}].content")));
            }
            total += m.content.chars().count();
            self.check_optional_id(&format!("messages[{i}].message_id"), &m.message_id)?;
            self.check_optional_id(&format!("messages[{i}].name"), &m.name)?;
        }
        if total > limits.max_add_chars {
            return Err(Error::input(
                "messages",
                format!(
                    "messages hold {total} characters; one add may carry at most {}",
                    limits.max_add_chars
                ),
                InputErrorKind::TooLarge,
            ));
        }

        Ok(())
    }

    pub(super) fn check_optional_id(&self, field: &str, v: &Option<String>) -> Result<()> {
        match v {
            Some(v) => self.check_id(field, v, InputErrorKind::Invalid),
            None => Ok(()),
        }
    }
}

/// An edit of one memory (`update/memory`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateInput {
    /// The owner, when the caller names one (a memory of another user is not found).
    pub user_id: Option<String>,
    /// The memory.
    pub memory_id: String,
    /// New text.
    pub value: Option<String>,
    /// New headline.
    pub key: Option<String>,
    /// New tags (replacing the old ones).
    pub tags: Option<Vec<String>>,
    /// New status: `activated` or `archived`.
    pub status: Option<MemoryStatus>,
    /// Why, for the history (default: which fields changed).
    pub note: Option<String>,
}

/// Feedback on what memos remembers (`add/feedback`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackInput {
    /// The end user.
    pub user_id: String,
    /// The conversation it came up in.
    pub conversation_id: String,
    /// What the user said, in their words.
    pub content: String,
    /// When (default now).
    pub time: Option<Millis>,
    /// The agent, if any.
    pub agent_id: Option<String>,
    /// The app, if any.
    pub app_id: Option<String>,
    /// Knowledge bases the correction is also written into (as an add's memories are).
    pub knowledgebase_ids: Vec<String>,
    /// Also into the project's public knowledge base.
    pub public: bool,
}

/// A message as a client sends it, already typed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Who said it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// When it was said; `None` means now.
    pub chat_time: Option<Millis>,
    /// The speaker's name.
    pub name: Option<String>,
    /// The client's id for the message.
    pub message_id: Option<String>,
    /// What the client sent beyond text, kept verbatim ([`Message::raw`]).
    pub raw: Option<Value>,
}

/// An add request.
#[derive(Debug, Clone, PartialEq)]
pub struct AddInput {
    /// The end user.
    pub user_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// The messages, in chat order.
    pub messages: Vec<NewMessage>,
    /// Tags for every memory made.
    pub tags: Vec<String>,
    /// Metadata for every memory made.
    pub info: Map<String, Value>,
    /// The agent that sends them.
    pub agent_id: Option<String>,
    /// The app that sends them.
    pub app_id: Option<String>,
    /// Return at once with a task id (true) or when the memories are searchable (false).
    pub async_mode: bool,
    /// Knowledge bases of the project that the memories made are also written into
    /// (MemOS's `allow_knowledgebase_ids`); each must exist.
    pub knowledgebase_ids: Vec<String>,
    /// Also into the project's public knowledge base (MemOS's `allow_public`), made on
    /// first use: [`PUBLIC_KB`](super::knowledge::PUBLIC_KB).
    pub public: bool,
}

impl AddInput {
    /// A sync add of `messages` by `user_id` in `conversation_id`, nothing else asked (no
    /// tags, metadata, agent, app or sharing). Calls that set more spell out every field.
    pub fn sync(
        user_id: impl Into<String>,
        conversation_id: impl Into<String>,
        messages: Vec<NewMessage>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            conversation_id: conversation_id.into(),
            messages,
            tags: vec![],
            info: Map::new(),
            agent_id: None,
            app_id: None,
            async_mode: false,
            knowledgebase_ids: vec![],
            public: false,
        }
    }
}

/// What an add returns.
#[derive(Debug, Clone, PartialEq)]
pub struct AddOutcome {
    /// The task that tracks it.
    pub task_id: String,
    /// `Running` for async adds, `Completed` for sync ones.
    pub status: TaskStatus,
    /// Ids of the memories made (sync adds only; async ones report them in the task).
    pub memory_ids: Vec<String>,
    /// With an LLM configured, a sync add's refinement task (`get/status` tracks it).
    pub refine_task_id: Option<String>,
}

/// A search request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchInput {
    /// The end user.
    pub user_id: String,
    /// What to look for: usually the user's latest message.
    pub query: String,
    /// The current conversation; its memories are boosted, never exclusively returned.
    pub conversation_id: Option<String>,
    /// How many results; `None` means the configured default.
    pub limit: Option<usize>,
    /// Restricts the candidates before ranking.
    pub filter: Option<Filter>,
    /// Search as of this moment: later memories are invisible.
    pub query_time: Option<Millis>,
    /// Which retrievers to use.
    pub mode: SearchMode,
    /// When the request began (`None`: when the search starts). Every write acknowledged
    /// before it is in the answer; searches of one request that share it (the memories,
    /// the preferences, the tools) can share one look at what other servers wrote.
    pub since: Option<std::time::Instant>,
}

/// Which retrievers a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// BM25 and dense, fused (dense only when a model is loaded).
    #[default]
    Hybrid,
    /// BM25 only: the baseline.
    Lexical,
    /// Embeddings only.
    Dense,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The memory.
    pub memory: Memory,
    /// How it is presented: `WorkingMemory` for the newest items of the current
    /// conversation, the stored type otherwise.
    pub memory_type: MemoryType,
    /// Calibrated relevance in [0, 1], boost included.
    pub relativity: f32,
    /// Why it ranked where it did; `None` where no ranking explains it (a knowledge-base
    /// chunk merged in).
    pub explain: Option<Box<Explain>>,
}

/// What each retriever said of a hit, and what the ranking added (`search/memory` with
/// `explain`; the dashboard's search playground shows it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Explain {
    /// BM25, over the whole time range.
    pub lexical: Option<Signal>,
    /// Embeddings (the score is the cosine), over the whole time range.
    pub dense: Option<Signal>,
    /// The date window the query names ("last week", "上个月"), if any, as `[start, end)`.
    pub date_window: Option<(Millis, Millis)>,
    /// Whether the retrievers found it again inside that window (which lifts it).
    pub in_window: bool,
    /// Whether the context of a dialogue-shaped query found it too (which lifts it).
    pub in_context: bool,
    /// The current conversation's boost (1.0: none).
    pub boost: f32,
    /// The fused score the results are sorted by, boost included.
    pub fused: f32,
    /// For a verbatim turn whose fact was superseded: the memory that replaced it, ranked
    /// right above it.
    pub outdated_by: Option<String>,
    /// For that replacement: the outdated turn it was placed above.
    pub replaces: Option<String>,
}

/// One retriever's view of a hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// 1-based rank in that retriever's list.
    pub rank: usize,
    /// The retriever's own score (BM25 score, cosine).
    pub score: f32,
    /// That score calibrated to [0, 1].
    pub relativity: f32,
}

/// A page request for a user's memories.
#[derive(Debug, Clone, PartialEq)]
pub struct ListInput {
    /// The end user.
    pub user_id: String,
    /// 1-based page number.
    pub page: usize,
    /// Page size.
    pub size: usize,
    /// Optional filter.
    pub filter: Option<Filter>,
    /// Only memories in these states; `None`: every state but soft-deleted.
    pub statuses: Option<Vec<MemoryStatus>>,
}

/// Most results a list page may hold.
pub const MAX_PAGE_SIZE: usize = 50;
/// Most messages `get/message` returns.
pub const MAX_MESSAGE_LIMIT: usize = 50;
/// Most ids one delete may name.
pub const MAX_DELETE_IDS: usize = 1_000;
/// Longest `memory_key` an edit may set.
pub(super) const MAX_KEY_CHARS: usize = 200;
