//! The fine path over real HTTP: a scripted OpenAI-compatible server (deterministic
//! replies, malformed JSON, 429/500s, slow replies) so retries, timeouts, schema checks and
//! the refine-in-place logic are asserted exactly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use memos_core::config::LlmConfig;
use memos_core::model::{ChangeKind, Role, TaskStatus};
use memos_core::service::{AddInput, NewMessage};
use memos_core::store::InMemoryStore;
use memos_core::{Config, MemoryService};
use serde_json::{Value, json};

/// One scripted reply: HTTP status, the assistant's `content` (or a raw body), a delay.
#[derive(Clone)]
struct Reply {
    status: u16,
    content: String,
    raw: bool,
    delay_ms: u64,
}

fn ok(content: Value) -> Reply {
    Reply {
        status: 200,
        content: content.to_string(),
        raw: false,
        delay_ms: 0,
    }
}

fn status(code: u16) -> Reply {
    Reply {
        status: code,
        content: json!({"error": {"message": "scripted"}}).to_string(),
        raw: true,
        delay_ms: 0,
    }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
}

async fn completions(
    State(script): State<Arc<Script>>,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    script.requests.lock().unwrap().push(body);
    let reply = script
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| status(500));
    tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    let body = if reply.raw {
        reply.content
    } else {
        json!({
            "id": "x", "object": "chat.completion", "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        })
        .to_string()
    };
    (StatusCode::from_u16(reply.status).unwrap(), body)
}

/// Starts the scripted server on a free loopback port; returns its base URL.
async fn scripted(replies: Vec<Reply>) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        replies: Mutex::new(replies.into()),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), script)
}

async fn service(base_url: &str, tweak: impl FnOnce(&mut LlmConfig)) -> Arc<MemoryService> {
    let mut config = Config::default();
    config.embed.model_dir = Default::default();
    config.llm = LlmConfig {
        base_url: base_url.into(),
        model: "scripted-model".into(),
        timeout_ms: 2_000,
        backoff_ms: 10,
        ..Default::default()
    };
    tweak(&mut config.llm);
    MemoryService::start(Arc::new(InMemoryStore::new()), None, None, config)
        .await
        .unwrap()
}

fn add(text: &str, async_mode: bool) -> AddInput {
    let mut input = crate::add_input(
        "u",
        vec![
            crate::user_message(text, memos_core::time::parse_str("2023-05-08T10:00:00Z")),
            NewMessage {
                role: Role::Assistant,
                content: "Noted!".into(),
                chat_time: memos_core::time::parse_str("2023-05-08T10:00:05Z"),
                name: None,
                message_id: None,
                raw: None,
            },
        ],
    );
    input.async_mode = async_mode;
    input
}

async fn finished(svc: &MemoryService, task: &str) -> memos_core::model::Task {
    for _ in 0..500 {
        let t = svc.task("p", task).await.unwrap();
        if t.status != TaskStatus::Running {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {task} never finished");
}

fn items() -> Value {
    json!({"memories": [
        {"key": "User's food preferences", "value": "The user loves spicy Sichuan food, but not oily hotpot.",
         "type": "UserMemory", "tags": ["food", "spicy"], "memory_time": "2023-05-08", "preference": "like",
         "reasoning": "Said in so many words.", "sources": [0]},
        {"key": "Trip plans", "value": "The user plans a trip to Chengdu in June 2023.",
         "type": "LongTermMemory", "tags": ["travel"], "memory_time": null, "preference": null, "sources": [0]},
        {"key": "User's travel preferences", "value": "The user seems to like trips to places known for their food.",
         "type": "UserMemory", "tags": ["travel"], "memory_time": null, "preference": "like",
         "preference_type": "implicit", "reasoning": "They plan a trip right after saying how much they love spicy food.",
         "sources": [0]}
    ]})
}

const SAID: &str = "I love spicy food but not oily hotpot. I'm going to Chengdu in June.";

#[tokio::test]
async fn the_llm_refines_fast_facts_in_place_and_adds_what_rules_missed() {
    let (url, script) = scripted(vec![ok(items())]).await;
    let svc = service(&url, |_| {}).await;
    let out = svc.add("p", add(SAID, false)).await.unwrap();
    // The fast path answered: the turn, its two facts, the reply.
    let fast_ids = out.memory_ids.clone();
    let task = finished(&svc, out.refine_task_id.as_ref().unwrap()).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);

    // The food fact kept its id and took the LLM's wording.
    let food = fast_ids
        .iter()
        .find(|id| task.memory_ids.contains(id))
        .expect("a fast fact was refined in place");
    let (m, history) = svc.history("p", Some("u"), food).await.unwrap();
    assert_eq!(
        m.value,
        "The user loves spicy Sichuan food, but not oily hotpot."
    );
    assert_eq!(history[0].kind, ChangeKind::Updated);
    assert_eq!(m.reasoning.as_deref(), Some("Said in so many words."));
    assert!(history[0].note.contains("scripted-model"));
    assert!(
        history[0]
            .before
            .as_ref()
            .unwrap()
            .starts_with("[user viewpoint]")
    );
    // The trip item and the inferred preference are new.
    let mut new = Vec::new();
    for id in task.memory_ids.iter().filter(|id| !fast_ids.contains(id)) {
        new.push(svc.history("p", Some("u"), id).await.unwrap().0);
    }
    assert!(
        new.iter()
            .any(|m| m.value == "The user plans a trip to Chengdu in June 2023.")
    );
    let inferred = new
        .iter()
        .find(|m| {
            m.tags
                .iter()
                .any(|t| t == memos_core::ingest::llm::IMPLICIT_TAG)
        })
        .expect("the implicit preference is kept as one");
    assert!(inferred.reasoning.as_ref().unwrap().contains("right after"));
    let prefs = svc
        .search_preferences(
            "p",
            &memos_core::service::SearchInput {
                user_id: "u".into(),
                query: "trips food places".into(),
                ..Default::default()
            },
            6,
        )
        .await
        .unwrap();
    assert!(
        prefs.iter().any(|h| h.memory.id == inferred.id),
        "{prefs:?}"
    );

    // The request: the bounded schema, the transcript, and the counted tokens.
    let req = &script.requests.lock().unwrap()[0];
    assert_eq!(req["model"], "scripted-model");
    assert_eq!(req["response_format"]["type"], "json_schema");
    let schema = &req["response_format"]["json_schema"]["schema"];
    // Bounded by the transcript (two messages): five items a message, and a source is
    // message 0 or 1.
    assert_eq!(schema["properties"]["memories"]["maxItems"], 10);
    assert_eq!(
        schema["properties"]["memories"]["items"]["properties"]["sources"]["items"]["maximum"],
        1
    );
    assert_eq!(
        schema["properties"]["memories"]["items"]["properties"]["tags"]["maxItems"],
        8
    );
    assert!(
        req["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Chengdu")
    );
    let usage = svc.llm().unwrap().usage();
    assert_eq!(
        (usage.calls, usage.prompt_tokens, usage.completion_tokens),
        (1, 100, 20)
    );
}

#[tokio::test]
async fn bad_replies_and_server_errors_are_retried_until_one_passes_the_schema() {
    let bad_item = json!({"memories": [{"key": "k", "value": "v", "type": "Opinion", "tags": [],
        "memory_time": null, "preference": null, "sources": []}]});
    let (url, script) = scripted(vec![
        ok(json!("{not json")),
        status(429),
        status(500),
        ok(bad_item),
        ok(items()),
    ])
    .await;
    let svc = service(&url, |c| c.max_retries = 4).await;
    let out = svc.add("p", add(SAID, false)).await.unwrap();
    let task = finished(&svc, out.refine_task_id.as_ref().unwrap()).await;
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    assert_eq!(script.requests.lock().unwrap().len(), 5);
    let usage = svc.llm().unwrap().usage();
    assert_eq!((usage.calls, usage.retries, usage.failures), (5, 4, 0));
}

#[tokio::test]
async fn a_server_that_never_answers_in_time_fails_the_refinement_not_the_add() {
    let slow = Reply {
        delay_ms: 1_000,
        ..ok(items())
    };
    let (url, script) = scripted(vec![slow.clone(), slow]).await;
    let svc = service(&url, |c| {
        c.timeout_ms = 100;
        c.max_retries = 1;
    })
    .await;
    let out = svc.add("p", add(SAID, false)).await.unwrap();
    let task = finished(&svc, out.refine_task_id.as_ref().unwrap()).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.unwrap().contains("fast-path memories stand"));
    assert_eq!(script.requests.lock().unwrap().len(), 2, "one retry");
    assert_eq!(svc.llm().unwrap().usage().failures, 1);
    // The fast path's memories are all there, unchanged.
    for id in &out.memory_ids {
        let (m, history) = svc.history("p", Some("u"), id).await.unwrap();
        assert!(history.is_empty(), "{m:?}");
    }
    // A 4xx other than 429 is not retried.
    let (url, script) = scripted(vec![status(400), ok(items())]).await;
    let svc = service(&url, |_| {}).await;
    let out = svc.add("p", add(SAID, false)).await.unwrap();
    let task = finished(&svc, out.refine_task_id.as_ref().unwrap()).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(script.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn json_object_servers_and_fenced_replies_work_and_async_adds_wait_for_the_llm() {
    let fenced = format!("```json\n{}\n```", items());
    let (url, script) = scripted(vec![Reply {
        content: fenced,
        ..ok(json!(null))
    }])
    .await;
    let svc = service(&url, |c| {
        c.response_format = memos_core::config::ResponseFormat::JsonObject
    })
    .await;
    let out = svc.add("p", add(SAID, true)).await.unwrap();
    assert!(
        out.refine_task_id.is_none(),
        "async adds refine inside their own task"
    );
    let task = finished(&svc, &out.task_id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    let format = script.requests.lock().unwrap()[0]["response_format"].clone();
    assert_eq!(format["type"], "json_object");
    assert_eq!(
        format["schema"]["properties"]["memories"]["type"], "array",
        "the schema rides along, as llama-cpp-python takes it: {format}"
    );
    let mut values = Vec::new();
    for id in &task.memory_ids {
        values.push(svc.history("p", Some("u"), id).await.unwrap().0.value);
    }
    assert!(
        values.iter().any(|v| v.contains("Chengdu in June 2023")),
        "{values:?}"
    );
    assert!(
        values
            .iter()
            .any(|v| v == "The user loves spicy Sichuan food, but not oily hotpot.")
    );
}

/// A bound profile follows what the user says (MemOS: "after binding, the fields update as
/// messages are added"): the LLM fills the fields open to it, a locked one keeps its value,
/// a reply naming a field nobody asked about is refused and retried.
#[tokio::test]
async fn the_llm_fills_the_open_fields_of_a_bound_profile() {
    let (url, script) = scripted(vec![
        ok(items()),
        ok(json!({"fields": [{"path": "Basic.Nickname", "value": "made up"}]})),
        ok(json!({"fields": [
            {"path": "Basic.City", "value": "Chengdu"},
            {"path": "Food.Likes", "value": "spicy Sichuan food"}
        ]})),
    ])
    .await;
    let svc = service(&url, |_| {}).await;
    let tpl = svc
        .create_profile_template(
            "p",
            "User",
            json!({
                "Basic": {"Name": {"value": "Ana", "algorithm_updatable": false},
                          "City": {"value": "", "algorithm_updatable": true}},
                "Food": {"Likes": {"value": ""}}
            })
            .as_object()
            .unwrap()
            .clone(),
        )
        .await
        .unwrap();
    svc.bind_profile_templates("p", &[("u".into(), tpl.clone())])
        .await
        .unwrap();
    let out = svc.add("p", add(SAID, false)).await.unwrap();
    let refine = out.refine_task_id.unwrap();
    assert_eq!(finished(&svc, &refine).await.status, TaskStatus::Completed);
    let p = svc.profiles("p", "u").await.unwrap().remove(0);
    assert_eq!(p.metadata["Basic"]["City"]["value"], "Chengdu");
    assert_eq!(p.metadata["Basic"]["Name"]["value"], "Ana", "locked");
    assert_eq!(p.metadata["Food"]["Likes"]["value"], "spicy Sichuan food");
    let requests = script.requests.lock().unwrap();
    assert_eq!(
        requests.len(),
        3,
        "extraction, a refused fill, the retried fill"
    );
    let asked = requests[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        asked.contains("Basic.City") && !asked.contains("Basic.Name"),
        "{asked}"
    );
    assert!(asked.contains("spicy food"), "{asked}");
}
