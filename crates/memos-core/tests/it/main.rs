//! memos-core integration tests: the real embedding models (fetched by
//! `scripts/fetch-models.sh` into `models/`, or `$MEMOS_MODELS_DIR`), and the LLM path
//! against a scripted OpenAI-compatible server on a real socket.

#![allow(unreachable_pub, missing_docs)]

mod fuzz;
mod llm;
mod models;
mod postgres;
mod props;
mod replicas;

use memos_core::model::{Millis, Role};
use memos_core::service::{AddInput, NewMessage};

/// A user's message, as a client sends it.
pub fn user_message(text: &str, chat_time: Option<Millis>) -> NewMessage {
    NewMessage {
        role: Role::User,
        content: text.into(),
        chat_time,
        name: None,
        message_id: None,
        raw: None,
    }
}

/// A sync add of `messages` by `user` in conversation `c`, nothing else asked.
pub fn add_input(user: &str, messages: Vec<NewMessage>) -> AddInput {
    AddInput::sync(user, "c", messages)
}
