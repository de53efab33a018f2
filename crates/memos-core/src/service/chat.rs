//! `chat`: an answer that already knows the user. The user's memories most relevant to
//! the question, their preferences and the conversation's recent turns go into the
//! prompt; the configured model answers, plainly or streamed; then the question and the
//! answer are remembered like any add.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::chat::{AnswerEvent, AnswerStream, ChatRequest, PromptMessage};
use crate::error::{Error, InputErrorKind, Result};
use crate::model::*;
use crate::text;
use crate::time;

use super::MemoryService;
use super::input::{AddInput, AddOutcome, NewMessage, SearchHit, SearchInput};

/// Longest answer a request may ask for, in tokens.
const MAX_TOKENS: u32 = 32_768;
/// Longest system prompt a client may send, in characters.
const MAX_SYSTEM_PROMPT: usize = 16_000;

/// A chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatInput {
    /// The subject, the question (`query`), the conversation (required), how many
    /// memories and which (`filter`).
    pub search: SearchInput,
    /// Instructions that replace the default ones.
    pub system_prompt: Option<String>,
    /// A model the configuration allows; the default when `None`.
    pub model: Option<String>,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Whether the user's preferences go into the prompt.
    pub include_preference: bool,
    /// How many preferences at most.
    pub preference_limit: usize,
    /// Least relevance a memory needs to go into the prompt.
    pub relativity: f32,
    /// Whether the question and the answer are added to memory afterwards.
    pub remember: bool,
    /// That add's mode: a task (true) or done before the answer returns (false).
    pub async_mode: bool,
    /// Tags of that add.
    pub tags: Vec<String>,
    /// Metadata of that add.
    pub info: Map<String, Value>,
    /// The agent the user speaks through.
    pub agent_id: Option<String>,
    /// The app.
    pub app_id: Option<String>,
    /// Knowledge bases whose chunks may go into the prompt beside the memories.
    pub knowledge: super::knowledge::KbSelect,
    /// Knowledge bases the add of the question and answer also writes into.
    pub share_with: Vec<String>,
    /// That add also writes into the project's public knowledge base.
    pub public: bool,
}

/// A chat's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnswer {
    /// What the model said.
    pub response: String,
    /// The model that said it.
    pub model: String,
    /// How many memories and preferences the prompt carried.
    pub memories_used: usize,
    /// The add that remembered the exchange, when asked.
    pub remembered: Option<AddOutcome>,
}

/// One piece of a streamed chat.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The model's reasoning, when its server streams it apart.
    Reasoning(String),
    /// Answer text, as the model writes it.
    Text(String),
    /// The answer is complete (and remembered, when asked).
    End(ChatAnswer),
}

/// A prompt ready for the model, and what to remember afterwards.
#[derive(Debug)]
struct Prepared {
    request: ChatRequest,
    input: ChatInput,
    asked_at: Millis,
    memories_used: usize,
}

/// A streamed chat: poll [`ChatStream::next`] until it yields `End` or `None`. Dropping it
/// (a client that went away) cancels the model's generation and remembers nothing.
#[derive(Debug)]
pub struct ChatStream {
    svc: Arc<MemoryService>,
    project: String,
    prepared: Prepared,
    answer: AnswerStream,
    text: String,
    ended: bool,
}

impl ChatStream {
    /// The next piece of the answer.
    pub async fn next(&mut self) -> Option<Result<ChatEvent>> {
        if self.ended {
            return None;
        }
        match self.answer.next().await {
            Some(Ok(AnswerEvent::Reasoning(r))) => Some(Ok(ChatEvent::Reasoning(r))),
            Some(Ok(AnswerEvent::Text(t))) => {
                self.text.push_str(&t);
                Some(Ok(ChatEvent::Text(t)))
            }
            Some(Err(e)) => {
                self.ended = true;
                Some(Err(e))
            }
            None => {
                self.ended = true;
                let text = std::mem::take(&mut self.text);
                Some(
                    self.svc
                        .finish_chat(&self.project, &self.prepared, text)
                        .await
                        .map(ChatEvent::End),
                )
            }
        }
    }
}

/// A memory as a line of the prompt: its date first, unless its text starts with one.
fn memory_line(m: &Memory) -> String {
    let v = m.value.trim();
    if v.starts_with('[')
        && v.get(1..5)
            .is_some_and(|y| y.chars().all(|c| c.is_ascii_digit()))
    {
        format!("- {v}")
    } else {
        let when = m.memory_time.unwrap_or(m.create_time);
        format!("- [{}] {v}", time::to_date(when))
    }
}

impl MemoryService {
    /// Checks the request and builds the prompt: recalled memories, preferences, the
    /// conversation's recent turns, the question.
    async fn prepare_chat(&self, project_id: &str, input: ChatInput) -> Result<Prepared> {
        let model = self.chat_model.as_ref().ok_or_else(|| {
            Error::NoLlm(
                "chat needs an LLM: set [llm] base_url and model in the configuration \
                 (any OpenAI-compatible server)"
                    .into(),
            )
        })?;
        let model_name = model.pick(input.model.as_deref())?;
        let conversation = input
            .search
            .conversation_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| Error::required("conversation_id"))?;
        self.check_id(
            "conversation_id",
            &conversation,
            InputErrorKind::ConversationIdTooLong,
        )?;
        // Checked before the LLM is asked, not by the add after it answered.
        for kb in &input.share_with {
            self.knowledgebase(project_id, kb).await?;
        }
        if input.max_tokens == 0 || input.max_tokens > MAX_TOKENS {
            return Err(Error::invalid(
                "max_tokens",
                format!("max_tokens must be between 1 and {MAX_TOKENS}"),
            ));
        }
        if input.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(Error::invalid(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        if input.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(Error::invalid("top_p", "top_p must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&input.relativity) {
            return Err(Error::invalid(
                "relativity",
                "relativity must be between 0 and 1",
            ));
        }
        if let Some(p) = &input.system_prompt
            && p.chars().count() > MAX_SYSTEM_PROMPT
        {
            return Err(Error::input(
                "system_prompt",
                format!("system_prompt holds at most {MAX_SYSTEM_PROMPT} characters"),
                InputErrorKind::TooLarge,
            ));
        }
        let asked_at = now_millis();
        let floor = input.relativity;
        let keep = |hits: Vec<SearchHit>| -> Vec<Memory> {
            hits.into_iter()
                .filter(|h| h.relativity >= floor)
                .map(|h| h.memory)
                .collect()
        };
        let limit = input
            .search
            .limit
            .unwrap_or(self.config.search.default_limit);
        let memories = keep(super::knowledge::merge_hits(
            self.search(project_id, input.search.clone()).await?,
            self.search_knowledge(project_id, &input.knowledge, &input.search)
                .await?,
            limit,
        ));
        let preferences = if input.include_preference && input.preference_limit > 0 {
            keep(
                self.search_preferences(project_id, &input.search, input.preference_limit)
                    .await?,
            )
        } else {
            vec![]
        };
        let scope = Scope::new(project_id, input.search.user_id.clone());
        let history: Vec<Message> = self
            .store
            .list_messages(&scope, &conversation, self.config.llm.chat_history)
            .await?
            .into_iter()
            .filter(|m| {
                matches!(m.role, Role::User | Role::Assistant) && !m.content.trim().is_empty()
            })
            .collect();

        let zh = text::is_mostly_cjk(&input.search.query);
        let mut system = input
            .system_prompt
            .clone()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| {
                if zh {
                    "你是一个拥有长期记忆的助手。回答时自然地用上你记得的关于用户的信息。".into()
                } else {
                    "You are a helpful assistant with long-term memory of the user. Use what \
                     you remember about them where it helps the answer."
                        .into()
                }
            });
        let today = time::to_date(asked_at);
        if !memories.is_empty() {
            system.push_str(if zh {
                "\n\n# 你记得的关于用户的事\n以下记忆按与这条消息的相关性召回，每条以其所指的日期开头；它们可能过时或不完整。\n"
            } else {
                "\n\n# What you remember about the user\nRecalled for this message, most relevant first; each starts with the date it refers to. They may be outdated or incomplete.\n"
            });
            system.push_str(
                &memories
                    .iter()
                    .map(memory_line)
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        if !preferences.is_empty() {
            system.push_str(if zh {
                "\n\n# 用户的偏好\n回答时请尊重这些偏好，即使问题没有提到它们：\n"
            } else {
                "\n\n# The user's preferences\nRespect these in your answer, even when the question does not mention them:\n"
            });
            system.push_str(
                &preferences
                    .iter()
                    .map(|m| format!("- {}", m.value.trim()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        system.push_str(&if zh {
            format!("\n\n今天是 {today}。")
        } else {
            format!("\n\nToday is {today}.")
        });
        let mut messages = vec![PromptMessage {
            role: "system",
            content: system,
        }];
        messages.extend(history.iter().map(|m| PromptMessage {
            role: if m.role == Role::User {
                "user"
            } else {
                "assistant"
            },
            content: m.content.clone(),
        }));
        messages.push(PromptMessage {
            role: "user",
            content: input.search.query.clone(),
        });
        let memories_used = memories.len() + preferences.len();
        Ok(Prepared {
            request: ChatRequest {
                model: model_name,
                messages,
                max_tokens: input.max_tokens,
                temperature: input.temperature,
                top_p: input.top_p,
            },
            input,
            asked_at,
            memories_used,
        })
    }

    /// Remembers the exchange (when asked) and makes the answer.
    async fn finish_chat(
        &self,
        project_id: &str,
        prepared: &Prepared,
        response: String,
    ) -> Result<ChatAnswer> {
        if response.trim().is_empty() {
            return Err(Error::Llm("the model answered with nothing".into()));
        }
        let input = &prepared.input;
        let remembered = if input.remember {
            let said = |role, content: &str, at| NewMessage {
                role,
                content: content.to_string(),
                chat_time: Some(at),
                name: None,
                message_id: None,
                raw: None,
            };
            Some(
                self.add(
                    project_id,
                    AddInput {
                        user_id: input.search.user_id.clone(),
                        conversation_id: input.search.conversation_id.clone().unwrap_or_default(),
                        messages: vec![
                            said(Role::User, &input.search.query, prepared.asked_at),
                            said(
                                Role::Assistant,
                                &response,
                                now_millis().max(prepared.asked_at + 1),
                            ),
                        ],
                        tags: input.tags.clone(),
                        info: input.info.clone(),
                        agent_id: input.agent_id.clone(),
                        app_id: input.app_id.clone(),
                        async_mode: input.async_mode,
                        knowledgebase_ids: input.share_with.clone(),
                        public: input.public,
                    },
                )
                .await?,
            )
        } else {
            None
        };
        Ok(ChatAnswer {
            response,
            model: prepared.request.model.clone(),
            memories_used: prepared.memories_used,
            remembered,
        })
    }

    /// Answers a question with what memos remembers of the user (`chat`), all at once.
    pub async fn chat(&self, project_id: &str, input: ChatInput) -> Result<ChatAnswer> {
        let prepared = self.prepare_chat(project_id, input).await?;
        let model = self.chat_model.as_ref().expect("prepare_chat checked");
        let response = model.answer(project_id, &prepared.request).await?;
        self.finish_chat(project_id, &prepared, response).await
    }

    /// [`Self::chat`], streamed: the model's tokens as it writes them, then the answer.
    pub async fn chat_stream(
        self: Arc<Self>,
        project_id: &str,
        input: ChatInput,
    ) -> Result<ChatStream> {
        let prepared = self.prepare_chat(project_id, input).await?;
        let model = self.chat_model.as_ref().expect("prepare_chat checked");
        let answer = model.stream(project_id, &prepared.request).await?;
        Ok(ChatStream {
            svc: self.clone(),
            project: project_id.to_string(),
            prepared,
            answer,
            text: String::new(),
            ended: false,
        })
    }
}
