//! The other requests: search, reads, deletes (with the checks that keep a delete from
//! widening), edits, feedback, rerank.

use memos_core::Error;
use memos_core::error::InputErrorKind;
use memos_core::filter::{Condition, Filter, Logic};
use memos_core::model::{MemoryStatus, MemoryType};
use serde::Deserialize;
use serde_json::Value;

use super::fields::{none_listed, only_default, plain_user, present, subject};

/// `search/memory` request. Unknown fields are refused; the SDK's other fields are taken
/// at the values that change nothing, or refused (see [`SearchMemoryRequest::check_sdk_fields`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchMemoryRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
    /// The query text.
    #[schema(required = true, value_type = String, min_length = 1)]
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
    /// Knowledge bases to search beside the memories: ids, `[]` or `"all"`.
    #[serde(default)]
    pub knowledgebase_ids: Option<Value>,
    /// MemOS memory views: only null.
    #[serde(default)]
    pub include_memory_view: Option<Vec<String>>,
    /// The answer's shape: only `memory`.
    #[serde(default)]
    pub context_format: Option<String>,
    /// Where the query comes from (a label); changes nothing.
    #[serde(default)]
    pub source: Option<Value>,
    /// Say why each result ranked where it did (our extension): each retriever's rank and
    /// score, the date window, the boost, the fused score.
    #[serde(default)]
    pub explain: Option<bool>,
}

impl SearchMemoryRequest {
    /// Refuses SDK fields set to what memos does not serve, naming them.
    pub fn check_sdk_fields(&self) -> Result<(), Error> {
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetProfileRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub user_id: Option<String>,
}

/// `get/users` request (our extension): a page of the project's users.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetUsersRequest {
    /// 1-based page.
    #[serde(default)]
    pub page: Option<usize>,
    /// Page size.
    #[serde(default)]
    pub size: Option<usize>,
}

/// `get/conversations` request (our extension): a page of a user's conversations.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConversationsRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub user_id: Option<String>,
    /// 1-based page.
    #[serde(default)]
    pub page: Option<usize>,
    /// Page size.
    #[serde(default)]
    pub size: Option<usize>,
}

/// `get/memory` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    /// Only memories in these states (our extension): `activated`, `archived` (superseded,
    /// kept for history) and `deleted` (soft-deleted). Absent: every state but `deleted`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub status: Option<Vec<String>>,
}

impl GetMemoryRequest {
    /// The states asked for, each checked.
    pub fn statuses(&self) -> Result<Option<Vec<MemoryStatus>>, Error> {
        let Some(list) = &self.status else {
            return Ok(None);
        };
        list.iter()
            .map(|s| {
                MemoryStatus::parse(s).ok_or_else(|| {
                    Error::invalid(
                        "status",
                        format!("unknown status {s:?}: use activated, archived or deleted"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetMessageRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub user_id: Option<String>,
    /// The conversation.
    #[schema(required = true, value_type = String, min_length = 1)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    /// The memories that match: of one user, or of every user of the project.
    Matching {
        /// The user; `None` for the whole project.
        user_id: Option<String>,
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
                        "memory_type must be WorkingMemory, LongTermMemory, UserMemory or ToolTrajectoryMemory, not `{t}`"
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
            // A filter alone selects across the project (the SDK's
            // `delete_memory(filter=...)`): it has at least one condition.
            (None, Some(filter), None) if user_id.is_none() => Ok(DeleteSelection::Matching {
                user_id: None,
                filter,
            }),
            // A filter, a type, or both: at least one condition, so never the whole user.
            (None, filter, memory_type) => {
                let user_id = Some(user_id.ok_or_else(|| Error::required("user_id"))?);
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

/// `update/memory` request. `content` / `title` are the MemOS SDK's names.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryRequest {
    /// The memory.
    #[schema(required = true, value_type = String, min_length = 1)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFeedbackRequest {
    /// The end user.
    #[serde(default, deserialize_with = "plain_user")]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub user_id: Option<String>,
    /// The conversation.
    #[schema(required = true, value_type = String, min_length = 1)]
    pub conversation_id: Option<String>,
    /// The user's correction, in their words.
    #[schema(required = true, value_type = String, min_length = 1)]
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
    /// `true`: the correction is also written into the project's public knowledge base
    /// (`kb_public`).
    #[serde(default)]
    pub allow_public: Option<bool>,
    /// Knowledge bases of the project that the correction is also written into (each
    /// must exist), as an add's memories are.
    #[serde(default)]
    pub allow_knowledgebase_ids: Option<Vec<String>>,
}

/// `get/history` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetHistoryRequest {
    /// The memory.
    #[schema(required = true, value_type = String, min_length = 1)]
    pub memory_id: Option<String>,
    /// Only if it is this user's.
    #[serde(default, deserialize_with = "plain_user")]
    pub user_id: Option<String>,
}

/// `export/user` request: one user's data, for the user to take elsewhere.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportUserRequest {
    /// The user.
    #[serde(default, deserialize_with = "plain_user")]
    #[schema(required = true, value_type = String, min_length = 1)]
    pub user_id: Option<String>,
    /// Include the memories' vectors (default false).
    #[serde(default)]
    pub include_vectors: Option<bool>,
}

/// `rerank` request: candidate texts to order by relevance to a query (nothing stored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    /// What the documents are ranked against.
    #[schema(required = true, value_type = String, min_length = 1)]
    pub query: Option<String>,
    /// The candidate texts.
    #[schema(required = true, value_type = Vec<String>, min_items = 1)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetStatusRequest {
    /// The task id an add returned.
    #[schema(required = true, value_type = String, min_length = 1)]
    pub task_id: Option<String>,
}
