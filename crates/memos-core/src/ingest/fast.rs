//! The fast path: every user or assistant turn becomes one memory that stands on its own,
//! and each fact a user states about themself becomes a profile item (`UserMemory`) of its
//! own: third person, a topic headline, tagged as a preference when it is one, and dated by
//! what it talks about ([`super::facts`]).
//!
//! A turn keeps its speaker and date in the text, so an LLM reading it later can resolve
//! "yesterday". A reply carries the other speaker's turn it answers (quoted, cut to 160
//! characters): "Yes, twice a week" is meaningless alone, and questions are often phrased
//! like the turn that prompted the answer. On LoCoMo this lifts message-level recall@10 from
//! 0.70 to 0.75 (BM25, README). The reply is its memory's first source, the quoted turn its
//! second. System and tool messages stay in the chat log only, except that each tool call
//! an assistant turn makes becomes a tool trajectory (`ToolTrajectoryMemory`, MemOS's tool
//! memory): the request that prompted it, the call, and the tool's answer.

use crate::ingest::head::Judged;
use crate::ingest::{AddContext, facts};
use crate::model::{Memory, MemoryStatus, MemoryType, Message, Millis, Role, Source};
use crate::text;
use crate::time;

/// How much of the replied-to turn is quoted; 100 measured worse on LoCoMo.
const CONTEXT_CHARS: usize = 160;
const HEADLINE_CHARS: usize = 48;
const KEYWORDS: usize = 5;

/// Extracts memories from `messages` (in chat order). `previous` is the conversation's last
/// stored message before them, used as context for a short first reply.
pub fn extract(
    ctx: &AddContext,
    messages: &[Message],
    previous: Option<&Message>,
    now: Millis,
) -> Vec<Memory> {
    extract_judged(ctx, messages, previous, now, &Judged::default())
}

/// [`extract`], with the preference head's verdicts on the user's sentences.
pub fn extract_judged(
    ctx: &AddContext,
    messages: &[Message],
    previous: Option<&Message>,
    now: Millis,
    judged: &Judged,
) -> Vec<Memory> {
    let mut out = Vec::new();
    let mut prev = previous;
    let mut request = previous.filter(|p| p.role == Role::User);
    for (i, m) in messages.iter().enumerate() {
        let calls = tool_calls(m);
        if m.role == Role::User {
            request = Some(m);
        }
        if !calls.is_empty() {
            out.extend(
                calls
                    .iter()
                    .map(|c| tool_memory(ctx, m, c, request, &messages[i + 1..], now)),
            );
            // A turn that only calls tools is its trajectories; its text says nothing more.
            if m.content.trim_start().starts_with(TOOL_CALL_PREFIX) {
                continue;
            }
        }
        if matches!(m.role, Role::User | Role::Assistant) && !m.content.trim().is_empty() {
            let context = prev.filter(|p| speaker(p, false) != speaker(m, false));
            out.push(turn_memory(ctx, m, context, now));
            if m.role == Role::User {
                out.extend(fact_memories(ctx, m, now, judged));
                if let Some(offer) = context.filter(|p| p.role == Role::Assistant) {
                    out.extend(choice_memory(ctx, m, offer, now));
                }
            }
        }
        if matches!(m.role, Role::User | Role::Assistant) {
            prev = Some(m);
        }
    }
    out
}

/// The preference a pick among the assistant's options reveals ("the second one" after a
/// list of hotels): what was chosen over what was passed on, an implicit preference
/// sourced from both turns.
fn choice_memory(ctx: &AddContext, m: &Message, offer: &Message, now: Millis) -> Option<Memory> {
    let c = super::choice::choice(&m.content, &offer.content)?;
    let zh = text::is_mostly_cjk(&m.content) || text::is_mostly_cjk(&c.chosen);
    let quoted = |o: &String| format!("“{o}”");
    let rejected: Vec<String> = c.rejected.iter().map(quoted).collect();
    let value = if zh {
        format!(
            "[用户观点] 用户在{}之间选择了{}。",
            [quoted(&c.chosen)]
                .iter()
                .chain(&rejected)
                .cloned()
                .collect::<Vec<_>>()
                .join("、"),
            quoted(&c.chosen)
        )
    } else {
        format!(
            "[user viewpoint] The user chose {} over {}.",
            quoted(&c.chosen),
            rejected.join(" and ")
        )
    };
    let fact = facts::Fact {
        sentence: c.chosen.clone(),
        value: value.clone(),
        topic: facts::topic(&format!("{} {}", c.chosen, offer.content), zh),
        preference: Some(facts::Polarity::Like),
        when: None,
        zh,
    };
    let mut tags = vec![
        fact.topic_tag(),
        PREFERENCE_TAG.to_string(),
        "like".to_string(),
        super::llm::IMPLICIT_TAG.to_string(),
        "choice".to_string(),
    ];
    add_tags(&mut tags, text::keywords(&c.chosen, KEYWORDS));
    add_tags(&mut tags, ctx.tags.iter().cloned());
    let day = time::to_date(m.chat_time);
    Some(Memory {
        id: uuid::Uuid::new_v4().to_string(),
        scope: ctx.scope.clone(),
        conversation_id: m.conversation_id.clone(),
        key: fact.key(),
        value,
        memory_type: MemoryType::UserMemory,
        memory_time: Some(m.chat_time),
        status: MemoryStatus::Activated,
        // Read off a pick, not said outright.
        confidence: 0.8,
        tags,
        info: ctx.info.clone(),
        agent_id: ctx.agent_id.clone(),
        app_id: ctx.app_id.clone(),
        sources: vec![Source::from(m), Source::from(offer)],
        reasoning: Some(if zh {
            format!("{day} 用户在助手给出的选项中选了这一个。")
        } else {
            format!("Chosen on {day} among the options the assistant offered.")
        }),
        create_time: now,
        update_time: now,
    })
}

/// Appends the tags not already there, compared without case.
fn add_tags(tags: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for t in more {
        if !tags.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            tags.push(t);
        }
    }
}

/// Who said a message: the name the client gave, or the role in the memory's language.
fn speaker(m: &Message, zh: bool) -> String {
    match &m.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => match (m.role, zh) {
            (Role::User, false) => "User".into(),
            (Role::User, true) => "用户".into(),
            (Role::Assistant, false) => "Assistant".into(),
            (Role::Assistant, true) => "助手".into(),
            (Role::System, _) => "System".into(),
            (Role::Tool, _) => "Tool".into(),
        },
    }
}

fn snippet(s: &str, max: usize) -> String {
    let s = s.trim().replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>().trim_end())
    }
}

fn turn_memory(ctx: &AddContext, m: &Message, context: Option<&Message>, now: Millis) -> Memory {
    let content = m.content.trim();
    let zh = text::is_mostly_cjk(content);
    let who = speaker(m, zh);
    let date = time::to_date(m.chat_time);
    let value = match context {
        None if zh => format!("[{date}] {who}：{content}"),
        None => format!("[{date}] {who}: {content}"),
        Some(p) if zh => format!(
            "[{date}] {who}（回复 {}：“{}”）：{content}",
            speaker(p, zh),
            snippet(&p.content, CONTEXT_CHARS)
        ),
        Some(p) => format!(
            "[{date}] {who} (replying to {}: \"{}\"): {content}",
            speaker(p, zh),
            snippet(&p.content, CONTEXT_CHARS)
        ),
    };
    let key = format!("{who}: {}", text::headline(content, HEADLINE_CHARS));
    let mut tags = text::keywords(content, KEYWORDS);
    add_tags(&mut tags, ctx.tags.iter().cloned());
    // The profile is the fact items; the verbatim turn is the record of the conversation.
    let memory_type = MemoryType::LongTermMemory;
    // The turn itself first: it is what the memory is about.
    let mut sources = vec![Source::from(m)];
    sources.extend(context.map(Source::from));
    Memory {
        id: uuid::Uuid::new_v4().to_string(),
        scope: ctx.scope.clone(),
        conversation_id: m.conversation_id.clone(),
        key,
        value,
        memory_type,
        memory_time: Some(m.chat_time),
        status: MemoryStatus::Activated,
        // A verbatim turn is exactly what was said.
        confidence: 1.0,
        tags,
        info: ctx.info.clone(),
        agent_id: ctx.agent_id.clone(),
        app_id: ctx.app_id.clone(),
        sources,
        reasoning: None,
        create_time: now,
        update_time: now,
    }
}

/// How the HTTP layer writes a tool call into a message's text (`[tool call] name(args)`).
const TOOL_CALL_PREFIX: &str = "[tool call]";
/// How much of a tool's answer and of the request a trajectory quotes.
const TOOL_TEXT_CHARS: usize = 300;
/// Tag on every tool trajectory.
pub const TOOL_TAG: &str = "tool";
/// Tag on a trajectory whose tool answered with an error.
pub const TOOL_FAILED_TAG: &str = "tool_failed";

/// One tool call of an assistant turn, as OpenAI's format writes it.
struct ToolCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// The tool calls an assistant turn kept verbatim (`raw.tool_calls`).
fn tool_calls(m: &Message) -> Vec<ToolCall> {
    if m.role != Role::Assistant {
        return vec![];
    }
    let Some(calls) = m
        .raw
        .as_ref()
        .and_then(|r| r.get("tool_calls"))
        .and_then(|c| c.as_array())
    else {
        return vec![];
    };
    calls
        .iter()
        .map(|c| {
            let f = c.get("function").unwrap_or(c);
            ToolCall {
                id: c.get("id").and_then(|v| v.as_str()).map(str::to_string),
                name: f
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("tool")
                    .to_string(),
                arguments: match f.get("arguments") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                },
            }
        })
        .collect()
}

/// The tool turn answering `call` among the turns after it: the one naming its id, or,
/// when the call has none, the first tool turn.
fn tool_answer<'a>(call: &ToolCall, later: &'a [Message]) -> Option<&'a Message> {
    later.iter().filter(|m| m.role == Role::Tool).find(|m| {
        let answers = m
            .raw
            .as_ref()
            .and_then(|r| r.get("tool_call_id"))
            .and_then(|v| v.as_str());
        match (&call.id, answers) {
            (Some(id), Some(a)) => id == a,
            (None, _) => true,
            (Some(_), None) => false,
        }
    })
}

/// Whether a tool's answer reports a failure: an `error` field, or text that says so.
fn tool_failed(answer: &str) -> bool {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(answer) {
        return o.get("error").is_some_and(|e| !e.is_null())
            || o.get("success") == Some(&serde_json::Value::Bool(false));
    }
    let lower = answer.trim_start().to_lowercase();
    ["error", "exception", "failed", "traceback", "错误", "失败"]
        .iter()
        .any(|w| lower.starts_with(w))
}

/// A tool trajectory: what was asked, the call, and what the tool answered.
fn tool_memory(
    ctx: &AddContext,
    m: &Message,
    call: &ToolCall,
    request: Option<&Message>,
    later: &[Message],
    now: Millis,
) -> Memory {
    let answer = tool_answer(call, later);
    let zh = request.is_some_and(|r| text::is_mostly_cjk(&r.content));
    let date = time::to_date(m.chat_time);
    let asked = request.map(|r| snippet(&r.content, TOOL_TEXT_CHARS));
    let got = answer.map(|a| snippet(&a.content, TOOL_TEXT_CHARS));
    let call_text = format!(
        "{}({})",
        call.name,
        snippet(&call.arguments, TOOL_TEXT_CHARS)
    );
    let value = match (zh, &asked, &got) {
        (true, Some(q), Some(a)) => format!("[{date}] 为“{q}”调用 {call_text} → {a}"),
        (true, None, Some(a)) => format!("[{date}] 调用 {call_text} → {a}"),
        (true, Some(q), None) => format!("[{date}] 为“{q}”调用 {call_text}，未记录结果"),
        (true, None, None) => format!("[{date}] 调用 {call_text}，未记录结果"),
        (false, Some(q), Some(a)) => format!("[{date}] For \"{q}\": called {call_text} → {a}"),
        (false, None, Some(a)) => format!("[{date}] Called {call_text} → {a}"),
        (false, Some(q), None) => {
            format!("[{date}] For \"{q}\": called {call_text}; no result recorded")
        }
        (false, None, None) => format!("[{date}] Called {call_text}; no result recorded"),
    };
    let mut tags = vec![TOOL_TAG.to_string(), call.name.clone()];
    if answer.is_some_and(|a| tool_failed(&a.content)) {
        tags.push(TOOL_FAILED_TAG.to_string());
    }
    add_tags(&mut tags, ctx.tags.iter().cloned());
    // The call first: it is what the memory is about; then its answer and its request.
    let mut sources = vec![Source::from(m)];
    sources.extend(answer.map(Source::from));
    sources.extend(request.map(Source::from));
    Memory {
        id: uuid::Uuid::new_v4().to_string(),
        scope: ctx.scope.clone(),
        conversation_id: m.conversation_id.clone(),
        key: format!("Tool: {}", call.name),
        value,
        memory_type: MemoryType::ToolTrajectoryMemory,
        memory_time: Some(m.chat_time),
        status: MemoryStatus::Activated,
        // The transcript, rearranged: exactly what happened.
        confidence: 1.0,
        tags,
        info: ctx.info.clone(),
        agent_id: ctx.agent_id.clone(),
        app_id: ctx.app_id.clone(),
        sources,
        reasoning: None,
        create_time: now,
        update_time: now,
    }
}

/// Tag on every profile item that states an explicit preference; search lists these under
/// `preference_detail_list`.
pub const PREFERENCE_TAG: &str = "preference";

/// One profile item per fact the user states about themself in `m`.
fn fact_memories(ctx: &AddContext, m: &Message, now: Millis, judged: &Judged) -> Vec<Memory> {
    facts::user_facts(&m.content, m.chat_time, m.name.as_deref())
        .into_iter()
        .map(|mut f| {
            judged.apply(&mut f);
            let mut tags = vec![f.topic_tag()];
            if let Some(p) = f.preference {
                tags.push(PREFERENCE_TAG.to_string());
                tags.push(p.as_str().to_string());
            }
            add_tags(&mut tags, text::keywords(&f.sentence, KEYWORDS));
            add_tags(&mut tags, ctx.tags.iter().cloned());
            Memory {
                id: uuid::Uuid::new_v4().to_string(),
                scope: ctx.scope.clone(),
                conversation_id: m.conversation_id.clone(),
                key: f.key(),
                value: f.value.clone(),
                memory_type: MemoryType::UserMemory,
                memory_time: Some(f.when.as_ref().map_or(m.chat_time, |w| w.day())),
                status: MemoryStatus::Activated,
                // A rule's rewrite of what was said: very likely right, not verbatim.
                confidence: 0.9,
                tags,
                info: ctx.info.clone(),
                agent_id: ctx.agent_id.clone(),
                app_id: ctx.app_id.clone(),
                sources: vec![Source::from(m)],
                reasoning: None,
                create_time: now,
                update_time: now,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;
    use crate::store::tests_support::message;

    fn ctx() -> AddContext {
        AddContext {
            scope: Scope::new("p", "u"),
            conversation_id: "c".into(),
            tags: vec!["trip".into()],
            ..Default::default()
        }
    }

    fn msg(role: Role, name: Option<&str>, text: &str, t: Millis) -> Message {
        let mut m = message(&Scope::new("p", "u"), "c", text, t);
        m.role = role;
        m.name = name.map(str::to_string);
        m
    }

    #[test]
    fn a_user_turn_is_kept_verbatim_and_its_facts_become_profile_items() {
        let m = msg(
            Role::User,
            None,
            "I love spicy food but I don't like oily hotpot. Yesterday I adopted a cat!",
            1_683_554_160_000, // 2023-05-08T13:56Z
        );
        let out = extract(&ctx(), std::slice::from_ref(&m), None, 5);
        assert_eq!(out.len(), 3);
        let turn = &out[0];
        assert_eq!(turn.memory_type, MemoryType::LongTermMemory);
        assert_eq!(
            turn.value,
            "[2023-05-08] User: I love spicy food but I don't like oily hotpot. Yesterday I adopted a cat!"
        );
        assert!(turn.key.starts_with("User: I love spicy food"));
        assert!(
            turn.tags.contains(&"spicy".to_string()) && turn.tags.contains(&"trip".to_string()),
            "{:?}",
            turn.tags
        );
        assert_eq!(turn.memory_time, Some(1_683_554_160_000));
        assert_eq!(turn.sources, vec![Source::from(&m)]);

        let food = &out[1];
        assert_eq!(food.memory_type, MemoryType::UserMemory);
        assert_eq!(food.key, "User's food preferences");
        assert_eq!(
            food.value,
            "[user viewpoint] The user loves spicy food but the user does not like oily hotpot."
        );
        assert!(
            food.tags.contains(&PREFERENCE_TAG.to_string()),
            "{:?}",
            food.tags
        );
        assert_eq!(food.sources, vec![Source::from(&m)]);
        assert_eq!(food.memory_time, Some(1_683_554_160_000));

        let cat = &out[2];
        assert_eq!(cat.key, "User's pets");
        assert!(!cat.tags.contains(&PREFERENCE_TAG.to_string()));
        // Dated by what it tells: the day before it was said.
        assert_eq!(
            cat.memory_time.map(time::to_date).as_deref(),
            Some("2023-05-07")
        );
    }

    #[test]
    fn facts_of_a_named_speaker_use_the_name_and_assistants_state_none() {
        let out = extract(
            &ctx(),
            &[
                msg(
                    Role::User,
                    Some("Caroline"),
                    "I went to a support group yesterday.",
                    1_683_554_160_000,
                ),
                msg(
                    Role::Assistant,
                    None,
                    "I love that you went!",
                    1_683_554_170_000,
                ),
            ],
            None,
            5,
        );
        let facts: Vec<&Memory> = out
            .iter()
            .filter(|m| m.memory_type == MemoryType::UserMemory)
            .collect();
        assert_eq!(facts.len(), 1);
        assert_eq!(
            facts[0].value,
            "[user viewpoint] Caroline went to a support group yesterday."
        );
    }

    #[test]
    fn replies_carry_the_turn_they_answer() {
        let q = msg(
            Role::Assistant,
            None,
            "Do you go running every morning before work?",
            1,
        );
        let a = msg(Role::User, Some("Caroline"), "Yes, twice a week.", 2);
        let out = extract(&ctx(), &[q.clone(), a.clone()], None, 5);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].memory_type, MemoryType::LongTermMemory);
        assert!(
            out[1]
                .value
                .contains("Caroline (replying to Assistant: \"Do you go running"),
            "{}",
            out[1].value
        );
        assert_eq!(out[1].sources, vec![Source::from(&a), Source::from(&q)]);
        // The same speaker going on needs no quote of themself.
        let more = msg(
            Role::User,
            Some("Caroline"),
            "And I swim on Sundays when the pool is open.",
            3,
        );
        let out = extract(&ctx(), &[q, a, more], None, 5);
        assert_eq!(
            out[2].value,
            "[1970-01-01] Caroline: And I swim on Sundays when the pool is open."
        );
    }

    #[test]
    fn a_pick_among_offered_options_is_an_implicit_preference_from_both_turns() {
        let offer = msg(
            Role::Assistant,
            None,
            "Two hotels are free:\n1. Hotel Lumen, quiet, by the park\n2. Grand Central Inn, in the busy center",
            1_000,
        );
        let pick = msg(
            Role::User,
            None,
            "Let's go with the quieter one by the park.",
            2_000,
        );
        let out = extract(&ctx(), &[offer.clone(), pick.clone()], None, 9);
        let chosen: Vec<&Memory> = out
            .iter()
            .filter(|m| m.tags.iter().any(|t| t == "choice"))
            .collect();
        assert_eq!(chosen.len(), 1, "{out:#?}");
        let c = chosen[0];
        assert!(
            c.value
                .contains("chose “Hotel Lumen, quiet, by the park” over “Grand Central Inn"),
            "{}",
            c.value
        );
        assert_eq!(c.key, "User's travel preferences");
        assert!(c.tags.iter().any(|t| t == super::super::llm::IMPLICIT_TAG));
        let sources: Vec<&str> = c.sources.iter().map(|s| s.message_id.as_str()).collect();
        assert_eq!(
            sources,
            [pick.message_id.as_str(), offer.message_id.as_str()]
        );
        assert!(c.reasoning.as_deref().unwrap().contains("options"));
        // A reply that is no pick reveals nothing.
        let other = msg(Role::User, None, "Which one has a pool?", 2_000);
        assert!(
            !extract(&ctx(), &[offer, other], None, 9)
                .iter()
                .any(|m| m.tags.iter().any(|t| t == "choice"))
        );
    }

    #[test]
    fn previous_stored_message_gives_context_too() {
        let q = msg(Role::Assistant, None, "你每天早上都跑步吗？", 1);
        let a = msg(Role::User, None, "是的。", 2);
        let out = extract(&ctx(), &[a], Some(&q), 5);
        assert!(
            out[0]
                .value
                .contains("用户（回复 助手：“你每天早上都跑步吗？”）："),
            "{}",
            out[0].value
        );
    }

    #[test]
    fn chinese_facts_are_profile_items_in_chinese() {
        let out = extract(
            &ctx(),
            &[msg(Role::User, None, "我每天早上跑步，我喜欢吃辣的。", 1)],
            None,
            5,
        );
        assert!(
            out[0].value.contains("用户：我每天早上跑步"),
            "{}",
            out[0].value
        );
        assert_eq!(out[1].memory_type, MemoryType::UserMemory);
        assert_eq!(
            out[1].value,
            "[用户观点] 用户每天早上跑步，用户喜欢吃辣的。"
        );
        assert_eq!(out[1].key, "用户的饮食偏好");
    }

    #[test]
    fn system_and_tool_messages_make_no_memories() {
        let out = extract(
            &ctx(),
            &[
                msg(Role::System, None, "You are helpful.", 1),
                msg(Role::Tool, None, "{\"ok\":true}", 2),
            ],
            None,
            5,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn each_tool_call_becomes_a_trajectory_with_its_request_and_answer() {
        let ask = msg(Role::User, None, "What's the weather in Oslo and Rome?", 1);
        let mut call = msg(
            Role::Assistant,
            None,
            "[tool call] get_weather({\"city\":\"Oslo\"}) [tool call] get_weather({\"city\":\"Rome\"})",
            2,
        );
        call.raw = Some(serde_json::json!({"tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]}));
        let mut rome = msg(Role::Tool, None, "{\"error\": \"city not found\"}", 3);
        rome.raw = Some(serde_json::json!({"tool_call_id": "b"}));
        let mut oslo = msg(Role::Tool, None, "{\"temp\": 12}", 3);
        oslo.raw = Some(serde_json::json!({"tool_call_id": "a"}));
        let out = extract(&ctx(), &[ask, call, rome, oslo], None, 5);
        let tools: Vec<&Memory> = out
            .iter()
            .filter(|m| m.memory_type == MemoryType::ToolTrajectoryMemory)
            .collect();
        assert_eq!(tools.len(), 2, "{out:#?}");
        assert_eq!(
            tools[0].value,
            "[1970-01-01] For \"What's the weather in Oslo and Rome?\": called get_weather({\"city\":\"Oslo\"}) → {\"temp\": 12}"
        );
        assert_eq!(tools[0].key, "Tool: get_weather");
        assert_eq!(tools[0].tags, ["tool", "get_weather", "trip"]);
        assert_eq!(
            tools[0].sources.iter().map(|s| s.role).collect::<Vec<_>>(),
            [Role::Assistant, Role::Tool, Role::User]
        );
        assert!(tools[1].value.contains("city not found"));
        assert!(tools[1].tags.contains(&TOOL_FAILED_TAG.to_string()));
        // The call-only assistant turn is its trajectories, not a turn memory as well.
        assert!(
            !out.iter().any(|m| m.value.contains("[tool call]")),
            "{out:#?}"
        );
        assert_eq!(
            out.iter()
                .filter(|m| m.memory_type == MemoryType::LongTermMemory)
                .count(),
            1
        );
    }
}
