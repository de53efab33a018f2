//! Turning chat messages into memory items.
//!
//! [`fast`] needs no LLM and runs inline with the add call. An LLM extractor (the "fine"
//! path) will sit beside it behind the same inputs: an [`AddContext`] and the messages.

pub mod eval;
pub mod facts;
pub mod fast;
pub mod reconcile;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Scope;

/// What an add request says about all of its messages. Persisted with the task so that
/// a restart can finish the extraction exactly as the request asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddContext {
    /// The partition.
    pub scope: Scope,
    /// The conversation the messages belong to.
    pub conversation_id: String,
    /// Client tags, added to every memory.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Client metadata, copied to every memory.
    #[serde(default)]
    pub info: Map<String, Value>,
    /// The agent that sent them.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The app that sent them.
    #[serde(default)]
    pub app_id: Option<String>,
}
