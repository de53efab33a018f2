//! Turning chat messages into memory items.
//!
//! [`fast`] needs no LLM and runs inline with the add call; [`facts`] is its profile-fact
//! finder and [`reconcile`] relates new facts to stored ones. [`llm`] is the fine path: any
//! OpenAI-compatible endpoint, run after the fast path, refining its items in place.
//! [`head`] is a small trained model over sentence vectors that finds the preferences the
//! rules miss. [`choice`] reads the preference a pick among offered options reveals. [`eval`] scores
//! extractors on labelled sentences.

pub mod choice;
pub mod eval;
pub mod facts;
pub mod fast;
pub mod head;
pub mod llm;
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
    /// Knowledge bases the add may also write its memories into (MemOS's
    /// `allow_knowledgebase_ids`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledgebase_ids: Vec<String>,
    /// For an LLM refinement task: the add task whose messages it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine_of: Option<String>,
    /// For an LLM refinement task: the fast-path memories it may refine in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fast_ids: Vec<String>,
}
