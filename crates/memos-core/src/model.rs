//! Domain records: memories, chat messages, tasks, API keys and the scope that partitions them.
//!
//! These are storage- and transport-neutral. The HTTP layer converts its wire types into them;
//! every store persists exactly these fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Milliseconds since the Unix epoch, UTC. Every timestamp in the domain uses it.
pub type Millis = i64;

/// The partition every read and write is confined to: a user inside a project.
///
/// A small JSON document kept beside the memories, addressed by kind, project, subject
/// and id: a profile template (subject `""`), a profile instance bound to a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// What it is (`profile_template`, `profile`).
    pub kind: String,
    /// The project.
    pub project_id: String,
    /// The subject it belongs to; `""` for the project's own documents.
    pub user_id: String,
    /// Its id within kind, project and subject.
    pub id: String,
    /// The document.
    pub body: serde_json::Value,
    /// Epoch ms.
    pub create_time: Millis,
    /// Epoch ms.
    pub update_time: Millis,
}

/// Which documents a call selects: each `None` matches any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DocSelect<'a> {
    /// The kind.
    pub kind: Option<&'a str>,
    /// The project.
    pub project_id: Option<&'a str>,
    /// The subject.
    pub user_id: Option<&'a str>,
    /// The id.
    pub id: Option<&'a str>,
}

impl DocSelect<'_> {
    /// Whether `d` is selected.
    pub fn matches(&self, d: &Doc) -> bool {
        self.kind.is_none_or(|k| k == d.kind)
            && self.project_id.is_none_or(|p| p == d.project_id)
            && self.user_id.is_none_or(|u| u == d.user_id)
            && self.id.is_none_or(|i| i == d.id)
    }
}

/// One subject of a project (a user, or an agent's own memory) as the store sums it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// The subject's id within the project ([`agent_subject`] for an agent).
    pub user_id: String,
    /// How many memories it holds, soft-deleted ones not counted.
    pub memories: usize,
    /// When any of them last changed.
    pub last_update: Millis,
}

/// One conversation of a subject's chat log, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation_id: String,
    /// How many messages it holds.
    pub messages: usize,
    /// When its first message was said.
    pub first_chat_time: Millis,
    /// When its last message was said.
    pub last_chat_time: Millis,
}

/// A project is what an API key grants; user ids are only unique inside a project, so two
/// projects with a user called `alice` never see each other's memories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The project the caller's key belongs to.
    pub project_id: String,
    /// The end user, as named by the calling application.
    pub user_id: String,
}

impl Scope {
    /// A scope for `user_id` inside `project_id`.
    pub fn new(project_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            user_id: user_id.into(),
        }
    }

    /// The scope of an agent's own memory (MemOS's `agent_id` as the subject instead of a
    /// user): a user id no client can send, since ids may not hold control characters, so
    /// an agent's memories and a user's never mix, whatever the names.
    pub fn agent(project_id: impl Into<String>, agent_id: &str) -> Self {
        Self::new(project_id, agent_subject(agent_id))
    }

    /// One string that identifies the scope, for indexes that want a single key. The unit
    /// separator cannot appear in ids (they are validated), so keys never collide.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}", self.project_id, self.user_id)
    }
}

/// A new random id (UUID v4), for things the server names.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Starts the scope user id of a knowledge base's partition: like an agent's, an id no
/// client can send.
pub const KB_SUBJECT: &str = "\u{2}kb:";

/// The scope user id under which a knowledge base's chunks live.
pub fn kb_subject(kb_id: &str) -> String {
    format!("{KB_SUBJECT}{kb_id}")
}

/// The knowledge base a scope user id belongs to, if it is one's partition.
pub fn subject_kb(user_id: &str) -> Option<&str> {
    user_id.strip_prefix(KB_SUBJECT)
}

/// Starts the scope user id of an agent subject ([`Scope::agent`]).
pub const AGENT_SUBJECT: &str = "\u{1}agent:";

/// The scope user id under which an agent's own memories live.
pub fn agent_subject(agent_id: &str) -> String {
    format!("{AGENT_SUBJECT}{agent_id}")
}

/// The agent whose memory a scope user id holds, if it is an agent subject.
pub fn subject_agent(user_id: &str) -> Option<&str> {
    user_id.strip_prefix(AGENT_SUBJECT)
}

/// What kind of memory an item is, with MemOS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemoryType {
    /// Recent items of the current conversation. Never stored: a presentation of the newest
    /// items of the conversation a request names.
    WorkingMemory,
    /// Everything worth remembering that is not about the user themself.
    LongTermMemory,
    /// What the user says about themself; together these form the user's profile.
    UserMemory,
    /// One tool call an agent made, with the request that prompted it and the tool's
    /// answer (MemOS's tool memory). Kept apart: searches and lists return these only when
    /// asked (`include_tool_memory`, or a filter on this type).
    ToolTrajectoryMemory,
}

impl MemoryType {
    /// MemOS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkingMemory => "WorkingMemory",
            Self::LongTermMemory => "LongTermMemory",
            Self::UserMemory => "UserMemory",
            Self::ToolTrajectoryMemory => "ToolTrajectoryMemory",
        }
    }

    /// Parses MemOS's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WorkingMemory" => Some(Self::WorkingMemory),
            "LongTermMemory" => Some(Self::LongTermMemory),
            "UserMemory" => Some(Self::UserMemory),
            "ToolTrajectoryMemory" => Some(Self::ToolTrajectoryMemory),
            _ => None,
        }
    }
}

/// Lifecycle of a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemoryStatus {
    /// Current and searchable.
    Activated,
    /// Superseded by a newer memory; kept for history and time-travel queries.
    Archived,
    /// Soft-deleted: kept for history, never returned. A hard delete removes it.
    Deleted,
}

impl MemoryStatus {
    /// MemOS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activated => "activated",
            Self::Archived => "archived",
            Self::Deleted => "deleted",
        }
    }

    /// Parses MemOS's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "activated" => Some(Self::Activated),
            "archived" => Some(Self::Archived),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The end user.
    User,
    /// The LLM application.
    Assistant,
    /// A system prompt; kept in the chat log, never turned into memories.
    System,
    /// A tool result; kept in the chat log, never turned into memories.
    Tool,
}

impl Role {
    /// The OpenAI-style spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
            Self::Tool => "tool",
        }
    }

    /// Parses the OpenAI-style spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "system" => Some(Self::System),
            "tool" => Some(Self::Tool),
            _ => None,
        }
    }
}

/// One message of the raw chat log, kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Server-assigned id, unique across the store.
    pub id: String,
    /// The id the client gave (`message_id`), or `id` when it gave none. Echoed in sources.
    pub message_id: String,
    /// The partition.
    pub scope: Scope,
    /// The conversation the message belongs to.
    pub conversation_id: String,
    /// Who said it.
    pub role: Role,
    /// The speaker's display name, when the client gave one.
    pub name: Option<String>,
    /// The text, with multimodal parts flattened.
    pub content: String,
    /// When it was said: the client's `chat_time`, or the time it arrived.
    pub chat_time: Millis,
    /// When the server stored it.
    pub create_time: Millis,
    /// The add task that brought it in.
    pub task_id: String,
    /// What the client sent beyond text, kept verbatim: an OpenAI assistant turn's
    /// `tool_calls`, a tool turn's `tool_call_id`, multimodal `content` parts. `None` for a
    /// plain text message.
    pub raw: Option<serde_json::Value>,
}

/// A message a memory was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The message's `message_id`.
    pub message_id: String,
    /// The message's conversation.
    pub conversation_id: String,
    /// The message's role.
    pub role: Role,
    /// The speaker's name, if known.
    pub name: Option<String>,
    /// When the message was said.
    pub chat_time: Millis,
}

impl From<&Message> for Source {
    fn from(m: &Message) -> Self {
        Self {
            message_id: m.message_id.clone(),
            conversation_id: m.conversation_id.clone(),
            role: m.role,
            name: m.name.clone(),
            chat_time: m.chat_time,
        }
    }
}

/// One memory item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Stable id (a UUID). Never changes once handed out.
    pub id: String,
    /// The partition.
    pub scope: Scope,
    /// The conversation the memory came from; searches boost it, never filter on it.
    pub conversation_id: String,
    /// A short headline.
    pub key: String,
    /// The memory text, standing on its own.
    pub value: String,
    /// What kind of memory it is (never `WorkingMemory` in storage).
    pub memory_type: MemoryType,
    /// When the remembered thing happened or was said.
    pub memory_time: Option<Millis>,
    /// Lifecycle state.
    pub status: MemoryStatus,
    /// How sure we are the memory is right, in [0, 1].
    pub confidence: f32,
    /// Keywords plus the tags the client sent.
    pub tags: Vec<String>,
    /// Free key-value metadata from the client, filterable.
    pub info: Map<String, Value>,
    /// The agent that wrote it, if the client named one.
    pub agent_id: Option<String>,
    /// The app that wrote it, if the client named one.
    pub app_id: Option<String>,
    /// The messages it was made from, oldest first.
    pub sources: Vec<Source>,
    /// Why the extractor believes it, when it said (the LLM path's reasoning for an
    /// implicit preference, say); none for verbatim turns and rule-made facts.
    pub reasoning: Option<String>,
    /// When it was first stored.
    pub create_time: Millis,
    /// When it last changed.
    pub update_time: Millis,
}

impl Memory {
    /// The text the lexical index sees: headline, body and tags.
    pub fn index_text(&self) -> String {
        let mut text = String::with_capacity(self.key.len() + self.value.len() + 64);
        text.push_str(&self.key);
        text.push('\n');
        text.push_str(&self.value);
        for tag in &self.tags {
            text.push('\n');
            text.push_str(tag);
        }
        text
    }
}

/// What happened to a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A repeat of it was said again: `update_time` moved and its sources grew.
    Merged,
    /// A newer memory contradicts it: it was archived, the newer one is `related_id`.
    Superseded,
    /// It replaces an older memory it contradicts (`related_id`), which was archived.
    Supersedes,
    /// Its text, key, tags or status were edited (`update/memory`, feedback).
    Updated,
    /// It was soft-deleted: kept, but never returned.
    Deleted,
    /// A verbatim turn whose fact a newer one (`related_id`) superseded: kept current, as
    /// the record of what was said, but ranked below what replaced it.
    Outdated,
}

impl ChangeKind {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merged => "merged",
            Self::Superseded => "superseded",
            Self::Supersedes => "supersedes",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Outdated => "outdated",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "merged" => Self::Merged,
            "superseded" => Self::Superseded,
            "supersedes" => Self::Supersedes,
            "updated" => Self::Updated,
            "deleted" => Self::Deleted,
            "outdated" => Self::Outdated,
            _ => return None,
        })
    }
}

/// One entry of a memory's history. Creation is not recorded: it is the memory's
/// `create_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryChange {
    /// The memory it happened to.
    pub memory_id: String,
    /// Its partition.
    pub scope: Scope,
    /// When.
    pub time: Millis,
    /// What.
    pub kind: ChangeKind,
    /// The other memory involved (a merge's, a supersession's), if any.
    pub related_id: Option<String>,
    /// The memory's text before the change, when the text changed or was archived.
    pub before: Option<String>,
    /// Why, in words (the feedback text, the repeated sentence).
    pub note: String,
}

/// State of an add task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Accepted and durable, not yet searchable.
    Running,
    /// Its memories are stored and searchable.
    Completed,
    /// It failed; the chat log still holds its messages.
    Failed,
}

impl TaskStatus {
    /// MemOS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses MemOS's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An add request being turned into memories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The id handed to the client.
    pub id: String,
    /// The partition.
    pub scope: Scope,
    /// Where it stands.
    pub status: TaskStatus,
    /// What the extraction needs besides the messages (tags, info, agent and app ids).
    pub payload: Value,
    /// Ids of the memories it produced, once completed.
    pub memory_ids: Vec<String>,
    /// A client-safe reason, when failed.
    pub error: Option<String>,
    /// When it was accepted.
    pub create_time: Millis,
    /// When it last changed.
    pub update_time: Millis,
}

/// A stored API key. The key itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id, used to list and revoke.
    pub id: String,
    /// The project the key grants.
    pub project_id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// The first characters of the secret, to recognise it in lists.
    pub prefix: String,
    /// A note from whoever created it.
    pub label: String,
    /// When it was created.
    pub create_time: Millis,
    /// When it was revoked; revoked keys never authenticate.
    pub revoked_time: Option<Millis>,
}

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
