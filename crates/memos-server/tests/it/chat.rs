//! `chat` (issue 14) against a scripted OpenAI-compatible server on a real socket: the
//! prompt carries the user's memories, preferences and recent turns; the answer comes
//! whole or streamed token by token as the model writes it; a client that goes away
//! cancels the model's generation; the exchange is remembered like any add.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::common::{TestServer, assert_error};

/// The scripted model: answers "Hello Ana! Try the fruit bowl." and records every request.
/// Streamed, it sends its first token and then waits for `go` before the rest, so a test
/// can see the first token arrive before the last exists. `dropped` fires when the
/// client (memos) closes the stream.
#[derive(Clone, Default)]
struct Model {
    requests: Arc<Mutex<Vec<Value>>>,
    go: Arc<Notify>,
    dropped: Arc<Notify>,
}

/// Fires its notify when the streamed body is dropped before it ended.
struct OnDrop(Arc<Notify>, bool);

impl OnDrop {
    /// The stream ended as it should: no drop to report.
    fn ended(&mut self) {
        self.1 = true;
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.notify_one();
        }
    }
}

const TOKENS: [&str; 4] = ["Hello", " Ana!", " Try the", " fruit bowl."];

async fn serve(model: Model) -> String {
    let m = model.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let m = m.clone();
            async move {
                m.requests.lock().unwrap().push(body.clone());
                if body["stream"] != true {
                    let text: String = TOKENS.concat();
                    return Json(json!({
                        "choices": [{"message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": 120, "completion_tokens": 8},
                    }))
                    .into_response();
                }
                let chunk = |delta: Value| {
                    format!(
                        "data: {}\n\n",
                        json!({"choices": [{"index": 0, "delta": delta}]})
                    )
                };
                let frames = futures_util::stream::unfold(
                    (0usize, OnDrop(m.dropped.clone(), false), m.go.clone()),
                    move |(i, mut guard, go)| async move {
                        let out = match i {
                            0 => chunk(json!({"reasoning_content": "The user is Ana."})),
                            1 => chunk(json!({"content": TOKENS[0]})),
                            2..=4 => {
                                if i == 2 {
                                    go.notified().await;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                chunk(json!({"content": TOKENS[i - 1]}))
                            }
                            // The usage chunk OpenAI sends with `include_usage`.
                            5 => format!(
                                "data: {}\n\n",
                                json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 4}})
                            ),
                            6 => "data: [DONE]\n\n".to_string(),
                            _ => {
                                guard.ended();
                                return None;
                            }
                        };
                        Some((Ok::<_, std::convert::Infallible>(out), (i + 1, guard, go)))
                    },
                );
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(frames))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn server(model: &Model) -> TestServer {
    let url = serve(model.clone()).await;
    TestServer::with_config(|c| {
        c.llm.base_url = url;
        c.llm.model = "scripted".into();
        c.llm.chat_models = vec!["scripted-large".into()];
        // Chat only: adds stay on the fast path.
        c.llm.refine = false;
        c.llm.max_retries = 0;
    })
    .await
}

async fn seed(s: &TestServer) {
    s.add(
        "u",
        "c",
        json!([
            {"role": "user", "content": "My name is Ana and I am allergic to peanuts.", "chat_time": "2025-05-03T10:00:00Z"},
            {"role": "user", "content": "I love jazz."}
        ]),
    )
    .await;
}

#[tokio::test]
async fn chat_answers_with_the_users_memories_and_remembers_the_exchange() {
    let model = Model::default();
    let s = server(&model).await;
    seed(&s).await;
    let (st, v) = s
        .post(
            "chat",
            json!({"user_id": "u", "conversation_id": "c", "query": "Which snack should I buy for my peanut-free party?",
                   "async_mode": false, "temperature": 0.2, "max_tokens": 300}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["response"], TOKENS.concat());
    assert_eq!(v["data"]["model"], "scripted");
    assert_eq!(v["data"]["status"], "completed");
    let sent = model.requests.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "scripted");
    assert_eq!(
        (sent["max_tokens"].as_u64(), sent["stream"].as_bool()),
        (Some(300), Some(false))
    );
    let msgs = sent["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert!(system.contains("allergic to peanuts"), "{system}");
    assert!(
        system.contains("[2025-05-03]"),
        "memories carry their dates: {system}"
    );
    assert!(system.contains("Today is "), "{system}");
    // The conversation's recent turns, then the question.
    assert_eq!(
        msgs[1]["content"],
        "My name is Ana and I am allergic to peanuts."
    );
    let last = msgs.last().unwrap();
    assert_eq!(
        (last["role"].as_str(), last["content"].as_str()),
        (
            Some("user"),
            Some("Which snack should I buy for my peanut-free party?")
        )
    );
    // Remembered: the question and the answer are in the chat log and searchable.
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c", "message_limit_number": 10}),
        )
        .await;
    let log = log["data"]["message_detail_list"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[3]["role"], "assistant");
    assert_eq!(log[3]["content"], TOKENS.concat());
    let hits = s
        .search(json!({"user_id": "u", "query": "fruit bowl"}))
        .await;
    assert!(
        hits.iter()
            .any(|h| h["memory_value"].as_str().unwrap().contains("fruit bowl")),
        "{hits:?}"
    );

    // A custom system prompt replaces the default instructions; the memories stay.
    let (st, _) = s
        .post(
            "chat",
            json!({"user_id": "u", "conversation_id": "c2", "query": "jazz tonight?",
                   "system_prompt": "Answer as a pirate.", "add_message_on_answer": false,
                   "model_name": "scripted-large"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let sent = model.requests.lock().unwrap()[1].clone();
    assert_eq!(sent["model"], "scripted-large");
    let system = sent["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(
        system.starts_with("Answer as a pirate.") && system.contains("jazz"),
        "{system}"
    );
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c2"}),
        )
        .await;
    assert_eq!(
        log["data"]["message_detail_list"],
        json!([]),
        "not remembered when asked not to"
    );
    // Both answers are billed to the key's project, with the tokens the model reported.
    let m = metrics(&s).await;
    for line in [
        r#"memos_llm_project_calls{project="alpha",job="chat"} 2"#,
        r#"memos_llm_project_tokens{project="alpha",job="chat",kind="prompt"} 240"#,
        r#"memos_llm_project_tokens{project="alpha",job="chat",kind="completion"} 16"#,
    ] {
        assert!(m.contains(line), "{line} missing from\n{m}");
    }
}

/// `/metrics` as text.
async fn metrics(s: &TestServer) -> String {
    let resp = s
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_streamed_chat_forwards_tokens_as_the_model_writes_them() {
    let model = Model::default();
    let s = server(&model).await;
    seed(&s).await;
    let req = Request::post("/api/openmem/v1/chat")
        .header("content-type", "application/json")
        .header("authorization", format!("Token {}", s.key))
        .body(Body::from(
            json!({"user_id": "u", "conversation_id": "c", "query": "What do I like?", "stream": true, "async_mode": false})
                .to_string(),
        ))
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    let mut events: Vec<Value> = Vec::new();
    let mut released = false;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the stream goes on")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = seen.find("\n\n") {
            let block: String = seen.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(d) = line.strip_prefix("data:") {
                    events.push(serde_json::from_str(d.trim()).unwrap());
                }
            }
        }
        // The first token is here while the model has not written the rest: release it.
        if !released && events.iter().any(|e| e["type"] == "text") {
            assert!(!events.iter().any(|e| e["type"] == "end"));
            released = true;
            model.go.notify_one();
        }
    }
    assert!(released, "{events:?}");
    assert_eq!(
        events[0],
        json!({"type": "reasoning", "data": "The user is Ana."})
    );
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "text")
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(text, TOKENS.concat());
    let end = events.last().unwrap();
    assert_eq!(end["type"], "end", "{events:?}");
    assert_eq!(end["data"]["response"], TOKENS.concat());
    assert_eq!(end["data"]["status"], "completed");
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c", "message_limit_number": 10}),
        )
        .await;
    assert_eq!(
        log["data"]["message_detail_list"].as_array().unwrap().len(),
        4
    );
    // A stream's usage chunk is counted too.
    let m = metrics(&s).await;
    assert!(
        m.contains(r#"memos_llm_project_tokens{project="alpha",job="chat",kind="completion"} 4"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_model_and_nothing_is_remembered() {
    let model = Model::default();
    let s = server(&model).await;
    let req = Request::post("/api/openmem/v1/chat")
        .header("content-type", "application/json")
        .header("authorization", format!("Token {}", s.key))
        .body(Body::from(
            json!({"user_id": "u", "conversation_id": "c", "query": "Tell me a story", "stream": true, "async_mode": false})
                .to_string(),
        ))
        .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    // Read until the first token, then hang up.
    let mut seen = String::new();
    while !seen.contains("\"text\"") {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(d) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&d));
        }
    }
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), model.dropped.notified())
        .await
        .expect("the model's stream is closed when the client goes away");
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(log["data"]["message_detail_list"], json!([]));
}

#[tokio::test]
async fn chat_refuses_clearly_and_stores_nothing() {
    // No LLM configured.
    let s = TestServer::new().await;
    let got = s
        .post(
            "chat",
            json!({"user_id": "u", "conversation_id": "c", "query": "hi"}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_IMPLEMENTED, 50001, "[llm]");
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(log["data"]["message_detail_list"], json!([]));

    let model = Model::default();
    let s = server(&model).await;
    for (body, code, field) in [
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "model_name": "gpt-9"}),
            40000,
            "model_name",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c"}),
            40002,
            "query",
        ),
        (
            json!({"user_id": "u", "query": "hi"}),
            40002,
            "conversation_id",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "temperature": 3.0}),
            40000,
            "temperature",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "max_tokens": 0}),
            40000,
            "max_tokens",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "internet_search": true}),
            40000,
            "internet_search",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "knowledgebase_ids": 5}),
            40000,
            "knowledgebase_ids",
        ),
        (
            json!({"user_id": "u", "conversation_id": "c", "query": "hi", "temprature": 0.1}),
            40000,
            "temprature",
        ),
    ] {
        let got = s.post("chat", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code, field);
    }
    assert!(
        model.requests.lock().unwrap().is_empty(),
        "the model was never asked"
    );
    let (_, log) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(log["data"]["message_detail_list"], json!([]));
}

/// `allow_knowledgebase_ids` on chat: an unknown base is refused before the model is asked;
/// a known one receives the remembered exchange, found by another user's search of the base.
#[tokio::test]
async fn a_chat_allowed_into_a_knowledge_base_remembers_the_exchange_there() {
    let model = Model::default();
    let s = server(&model).await;
    assert_error(
        &s.post(
            "chat",
            json!({"user_id": "u", "conversation_id": "c", "query": "What is good for lunch?",
                   "allow_knowledgebase_ids": ["kb_nope"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "kb_nope",
    );
    assert!(
        model.requests.lock().unwrap().is_empty(),
        "the model was never asked"
    );
    let (_, v) = s
        .post(
            "create/knowledgebase",
            json!({"knowledgebase_name": "Lunch ideas"}),
        )
        .await;
    let kb = v["data"]["id"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            "chat",
            json!({"user_id": "u", "conversation_id": "c", "query": "What is good for lunch?",
                   "async_mode": false, "allow_knowledgebase_ids": [kb]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, found) = s
        .post(
            "search/memory",
            json!({"user_id": "other", "query": "fruit bowl lunch", "knowledgebase_ids": [kb]}),
        )
        .await;
    let hits = found["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        hits.iter().any(
            |h| h["memory_value"].as_str().unwrap().contains("fruit bowl")
                && h["info"]["shared_from"]["user_id"] == "u"
        ),
        "{hits:?}"
    );
}
