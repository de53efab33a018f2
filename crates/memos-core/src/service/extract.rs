//! `extract/memory`: what an add would remember from some messages, without storing
//! anything: the facts the user states about themself and their preferences, as the fast
//! path extracts them.

use crate::error::Result;
use crate::ingest::{AddContext, fast};
use crate::model::*;

use super::MemoryService;
use super::add::build_messages;
use super::input::NewMessage;

/// What an extraction found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// Facts about the user (profile items that are not preferences).
    pub memories: Vec<Memory>,
    /// The user's stated likes, dislikes and habits.
    pub preferences: Vec<Memory>,
}

impl MemoryService {
    /// The facts and preferences `messages` state, extracted as an add would, stored nowhere.
    pub async fn extract(&self, project_id: &str, messages: &[NewMessage]) -> Result<Extracted> {
        self.check_messages(messages)?;
        let now = now_millis();
        // A scope of its own: these memories are never written, the scope only labels them.
        let scope = Scope::new(project_id, "extract");
        let rows = build_messages(&scope, "extract", "extract", now, messages);
        let ctx = AddContext {
            scope,
            conversation_id: "extract".into(),
            ..Default::default()
        };
        let judged = self.judge_sentences(&rows, false).await?;
        let (preferences, memories) = fast::extract_judged(&ctx, &rows, None, now, &judged)
            .into_iter()
            .filter(|m| m.memory_type == MemoryType::UserMemory)
            .partition(|m| m.tags.iter().any(|t| t == fast::PREFERENCE_TAG));
        Ok(Extracted {
            memories,
            preferences,
        })
    }
}
