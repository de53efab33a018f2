//! Issue 12: unknown fields are refused on every endpoint, naming them; the MemOS SDK's own
//! fields are taken at the values that change nothing, acted on (`relativity`,
//! `include_preference`), or refused.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn unknown_fields_are_refused_everywhere_and_store_nothing() {
    let s = TestServer::new().await;
    let msg = json!([{"role": "user", "content": "I keep bees."}]);
    let cases = [
        (
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": msg, "user": "x"}),
            "user",
        ),
        (
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "assistant", "content": "x", "function_call": {}}]}),
            "function_call",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "bees", "limit": 3}),
            "limit",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "bees", "knowledgebase_ids": {"kb": 1}}),
            "knowledgebase_ids",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "bees", "agent_id": "a"}),
            "agent_id",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "bees", "relativity": 2}),
            "relativity",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "bees", "context_format": "text"}),
            "context_format",
        ),
        (
            "get/memory",
            json!({"user_id": "u", "page_size": 3}),
            "page_size",
        ),
        (
            "get/message",
            json!({"user_id": "u", "conversation_id": "c", "limit": 3}),
            "limit",
        ),
        (
            "update/memory",
            json!({"memory_id": "m", "value": "x"}),
            "value",
        ),
        ("get/status", json!({"task_id": "t", "wait": true}), "wait"),
        ("get/history", json!({"memory_id": "m", "all": true}), "all"),
        (
            "get/profile",
            json!({"user_id": "u", "topic": "x"}),
            "topic",
        ),
    ];
    for (path, body, field) in cases {
        let got = s.post(path, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, 40000, field);
    }
    let (_, v) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(v["data"]["total"], 0, "a refused add stores nothing");
}

#[tokio::test]
async fn the_sdks_defaults_are_accepted_and_its_switches_act() {
    let s = TestServer::new().await;
    // What MemOSClient.add_message sends by default.
    let (st, v) = s
        .post(
            "add/message",
            json!({"messages": [{"role": "user", "content": "I love jazz and I avoid gluten."}],
                   "user_id": "u", "conversation_id": "c", "info": null, "source": null,
                   "app_id": null, "agent_id": null, "allow_public": false,
                   "allow_knowledgebase_ids": null, "allow_memory_view": null, "tags": null,
                   "async_mode": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.add(
        "u",
        "c",
        json!([{"role": "user", "content": "My neighbour plays loud jazz records every Friday night at the club downtown."}]),
    )
    .await;
    // What search_memory sends by default, with a threshold.
    let body = |relativity: f64| {
        json!({"query": "jazz", "user_id": "u", "conversation_id": null, "agent_id": null,
               "memory_limit_number": 6, "include_preference": true, "knowledgebase_ids": null,
               "filter": null, "preference_limit_number": 6, "tool_memory_limit_number": 6,
               "relativity": relativity, "include_skill": false, "skill_limit_number": 6,
               "include_memory_view": null, "context_format": "memory", "source": null,
               "include_tool_memory": true})
    };
    let (st, all) = s.post("search/memory", body(0.0)).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    assert_eq!(all["data"]["tool_memory_detail_list"], json!([]));
    let scores: Vec<f64> = all["data"]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["relativity"].as_f64().unwrap())
        .collect();
    let (lo, hi) = scores
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(hi > lo, "scores differ: {scores:?}");
    let floor = (lo + hi) / 2.0;
    let (_, some) = s.post("search/memory", body(floor)).await;
    let kept = some["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        kept.len() < scores.len(),
        "the threshold leaves the weakest out"
    );
    assert!(
        kept.iter()
            .all(|m| m["relativity"].as_f64().unwrap() >= floor)
    );
    // get_memory's defaults: the user's preferences listed beside the page.
    let (st, v) = s
        .post(
            "get/memory",
            json!({"include_preference": true, "user_id": "u", "agent_id": null,
                   "include_tool_memory": true, "include_memory_view": null, "filter": null,
                   "page": 1, "size": 10}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let prefs = v["data"]["preference_detail_list"].as_array().unwrap();
    assert!(
        prefs
            .iter()
            .any(|p| p["preference"].as_str().unwrap().contains("jazz")),
        "{prefs:?}"
    );
    let (_, v) = s
        .post(
            "get/memory",
            json!({"user_id": "u", "include_preference": false}),
        )
        .await;
    assert_eq!(v["data"]["preference_detail_list"], json!([]));
}

/// Issue 12: `chat_time` as MemOS's clients send it: ISO 8601 with or without a zone or a
/// `T`, epoch seconds or milliseconds, and dates in words in English and Chinese.
#[tokio::test]
async fn chat_times_are_taken_in_every_form_memos_clients_send() {
    let s = TestServer::new().await;
    let want = "2025-05-03T15:00:00.000Z";
    for (i, t) in [
        json!("2025-05-03T15:00:00Z"),
        json!("2025-05-03 15:00:00"),
        json!("2025-05-03T23:00:00+08:00"),
        json!(1_746_284_400),
        json!(1_746_284_400_000i64),
        json!("May 3, 2025 3pm"),
        json!("3 May 2025 15:00"),
        json!("3:00 pm on 3 May, 2025"),
        json!("2025年5月3日 下午3点"),
    ]
    .into_iter()
    .enumerate()
    {
        let conv = format!("c{i}");
        s.add(
            "u",
            &conv,
            json!([{"role": "user", "content": "I keep bees.", "chat_time": t}]),
        )
        .await;
        let (_, v) = s
            .post(
                "get/message",
                json!({"user_id": "u", "conversation_id": conv}),
            )
            .await;
        assert_eq!(
            v["data"]["message_detail_list"][0]["chat_time"], want,
            "{t}"
        );
    }
    assert_error(
        &s.post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c",
                   "messages": [{"role": "user", "content": "x", "chat_time": "the day after"}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "messages[0].chat_time",
    );
}

/// Issue 12: `agent_id` as the subject instead of `user_id` (exactly one, as the SDK
/// enforces) in add, search, get and delete. An agent's memory is its own: a user of the
/// same name never sees it, and erasing one leaves the other.
#[tokio::test]
async fn agent_memory_is_its_own_subject_in_add_search_get_and_delete() {
    let s = TestServer::new().await;
    let add = |subject: serde_json::Value, text: &str| {
        let mut body = json!({"conversation_id": "c", "async_mode": false,
                              "messages": [{"role": "user", "content": text}]});
        for (k, v) in subject.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (subject, text) in [
        (json!({"agent_id": "bot"}), "I prefer answering in French."),
        (
            json!({"user_id": "bot"}),
            "I live in Oslo and I prefer tea.",
        ),
        (
            json!({"user_id": "u", "agent_id": "bot"}),
            "I keep bees on my roof.",
        ),
    ] {
        let (st, v) = s.post("add/message", add(subject, text)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let texts = |v: &serde_json::Value| -> Vec<String> {
        v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["memory_value"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, agent) = s
        .post(
            "search/memory",
            json!({"agent_id": "bot", "query": "prefer"}),
        )
        .await;
    let found = texts(&agent);
    assert!(found.iter().any(|t| t.contains("French")), "{found:?}");
    assert!(
        found
            .iter()
            .all(|t| !t.contains("Oslo") && !t.contains("bees")),
        "{found:?}"
    );
    let first = &agent["data"]["memory_detail_list"][0];
    assert!(first["user_id"].is_null(), "{first}");
    assert_eq!(first["agent_id"], "bot");
    let (_, user) = s
        .post(
            "search/memory",
            json!({"user_id": "bot", "query": "prefer"}),
        )
        .await;
    assert!(
        texts(&user).iter().all(|t| !t.contains("French")),
        "the user of the same name sees none of it"
    );
    // The user who spoke through the agent owns that memory; the agent is its sender.
    let (_, u) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(u["data"]["memory_detail_list"][0]["user_id"], "u");
    assert_eq!(u["data"]["memory_detail_list"][0]["agent_id"], "bot");
    let (_, listed) = s.post("get/memory", json!({"agent_id": "bot"})).await;
    let agent_total = listed["data"]["total"].as_u64().unwrap();
    assert!(agent_total >= 1, "{listed}");
    // Exactly one subject; an agent's scope id cannot be forged as a user id.
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "bot", "agent_id": "bot", "query": "x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "agent_id",
    );
    assert_error(
        &s.post("search/memory", json!({"query": "x"})).await,
        StatusCode::BAD_REQUEST,
        40002,
        "user_id or agent_id",
    );
    assert_error(
        &s.post("get/memory", json!({"user_id": "\u{1}agent:bot"}))
            .await,
        StatusCode::BAD_REQUEST,
        40000,
        "user_id",
    );
    // Deletes by agent: a type, then the whole agent; the user `bot` keeps everything.
    let (_, before) = s.post("get/memory", json!({"user_id": "bot"})).await;
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"agent_id": "bot", "memory_type": "LongTermMemory"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.post("delete/memory", json!({"agent_id": "bot"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, gone) = s.post("get/memory", json!({"agent_id": "bot"})).await;
    assert_eq!(gone["data"]["total"], 0);
    let (_, after) = s.post("get/memory", json!({"user_id": "bot"})).await;
    assert_eq!(after["data"]["total"], before["data"]["total"]);
    let (_, u) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert!(
        u["data"]["total"].as_u64().unwrap() >= 1,
        "the user who spoke through it keeps theirs"
    );
}

/// Issue 12: an agent framework's transcript goes in as it is: `system` turns, an
/// assistant turn with `tool_calls` and no content, a `tool` turn with `tool_call_id`,
/// multimodal parts. The chat log keeps them verbatim; their text is searchable.
#[tokio::test]
async fn tool_calling_transcripts_are_kept_verbatim_and_searchable() {
    let s = TestServer::new().await;
    let calls = json!([{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]);
    let parts = json!([{"type": "text", "text": "Here is my ticket"},
                       {"type": "image_url", "image_url": {"url": "https://example.com/t.png"}}]);
    let transcript = json!([
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 3, \"sky\": \"snow\"}"},
        {"role": "assistant", "content": "It is 3°C and snowing in Oslo."},
        {"role": "user", "content": parts}
    ]);
    s.add("u", "trip", transcript).await;
    let (_, v) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "trip", "message_limit_number": 10}),
        )
        .await;
    let log = v["data"]["message_detail_list"].as_array().unwrap();
    assert_eq!(log.len(), 6, "{v}");
    assert_eq!(log[0]["role"], "system");
    assert_eq!(log[2]["tool_calls"], calls, "kept verbatim");
    assert!(log[2]["content"].as_str().unwrap().contains("get_weather"));
    assert_eq!(log[3]["role"], "tool");
    assert_eq!(log[3]["tool_call_id"], "call_1");
    assert_eq!(log[5]["content_parts"], parts);
    assert_eq!(
        log[5]["content"],
        "Here is my ticket [image: https://example.com/t.png]"
    );
    assert!(log[1].get("tool_calls").is_none(), "plain turns stay plain");
    // The tool call is a tool trajectory (MemOS's tool memory): searched in its own
    // channel, never mixed into the memory list.
    let (st, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "get_weather Oslo", "include_tool_memory": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let tools = v["data"]["tool_memory_detail_list"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{v}");
    assert_eq!(tools[0]["tool_type"], "ToolTrajectoryMemory");
    assert_eq!(
        tools[0]["tool_value"],
        format!(
            "[{}] For \"What's the weather in Oslo?\": called get_weather({{\"city\":\"Oslo\"}}) → {{\"temp\": 3, \"sky\": \"snow\"}}",
            &tools[0]["memory_time"].as_str().unwrap()[..10]
        )
    );
    assert_eq!(tools[0]["tool_used_status"][0]["used_tool"], "get_weather");
    assert_eq!(tools[0]["tool_used_status"][0]["success_rate"], 1.0);
    let roles: Vec<&str> = tools[0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["assistant", "tool", "user"]);
    let main = v["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        main.iter()
            .all(|m| m["memory_type"] != "ToolTrajectoryMemory"
                && !m["memory_value"].as_str().unwrap().contains("[tool call]")),
        "{main:?}"
    );
    let (_, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "get_weather Oslo"}),
        )
        .await;
    assert!(
        v["data"].get("tool_memory_detail_list").is_none(),
        "only when asked: {v}"
    );
    // Listed apart too, and selectable by type.
    let (_, v) = s
        .post(
            "get/memory",
            json!({"user_id": "u", "include_tool_memory": true}),
        )
        .await;
    assert_eq!(
        v["data"]["tool_memory_detail_list"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{v}"
    );
    let listed = v["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|m| m["memory_type"] != "ToolTrajectoryMemory")
    );
    let (_, v) = s
        .post(
            "get/memory",
            json!({"user_id": "u", "filter": {"memory_type": "ToolTrajectoryMemory"}}),
        )
        .await;
    assert_eq!(v["data"]["total"], 1, "{v}");
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "memory_type": "ToolTrajectoryMemory"}),
        )
        .await;
    assert_eq!(
        (st, &v["data"]["deleted_count"]),
        (StatusCode::OK, &json!(1)),
        "{v}"
    );
    let (_, v) = s
        .post(
            "get/memory",
            json!({"user_id": "u", "include_tool_memory": true}),
        )
        .await;
    assert_eq!(v["data"]["tool_memory_detail_list"], json!([]), "{v}");
    assert!(
        !v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A tool that answers with an error is a failed trajectory.
    s.add(
        "u",
        "trip2",
        json!([
            {"role": "user", "content": "Book the 9am train to Bergen."},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "b1", "type": "function",
                "function": {"name": "book_train", "arguments": "{\"to\":\"Bergen\"}"}}]},
            {"role": "tool", "tool_call_id": "b1", "content": "Error: sold out"}
        ]),
    )
    .await;
    let (_, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "train to Bergen", "include_tool_memory": true}),
        )
        .await;
    let status = &v["data"]["tool_memory_detail_list"][0]["tool_used_status"][0];
    assert_eq!(
        (
            &status["used_tool"],
            &status["error_type"],
            &status["success_rate"]
        ),
        (&json!("book_train"), &json!("tool_error"), &json!(0.0)),
        "{v}"
    );
    // A content that is neither text nor parts is named.
    assert_error(
        &s.post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": 5}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40000,
        "messages[0].content",
    );
}

/// Issue 12: `rerank` orders a client's texts by relevance, in MemOS's answer shape, and
/// stores nothing.
#[tokio::test]
async fn rerank_orders_documents_in_memos_shape() {
    let s = TestServer::new().await;
    let docs = json!([
        "User is a backend developer in Hangzhou",
        "User likes playing badminton on weekends",
        "User prefers concise replies"
    ]);
    let (st, v) = s
        .post(
            "rerank",
            json!({"model": "memos-reranker-0.6b", "query": "badminton weekends", "documents": docs}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let results = v["data"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["index"], 1);
    assert_eq!(results[0]["document"]["text"], docs[1]);
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["relevance_score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(v["data"]["id"].as_str().unwrap().starts_with("rerank-"));
    assert!(v["data"]["model"].is_string());
    let (_, v) = s
        .post(
            "rerank",
            json!({"query": "badminton", "documents": docs, "top_n": 1}),
        )
        .await;
    assert_eq!(v["data"]["results"].as_array().unwrap().len(), 1);
    for (body, code, field) in [
        (json!({"query": "x", "documents": []}), 40003, "documents"),
        (json!({"query": "x"}), 40002, "documents"),
        (json!({"documents": ["a"]}), 40002, "query"),
        (
            json!({"query": "x", "documents": ["a"], "top_n": 0}),
            40000,
            "top_n",
        ),
        (
            json!({"query": "x", "documents": ["a"], "model": "gpt-4"}),
            40000,
            "model",
        ),
    ] {
        assert_error(
            &s.post("rerank", body).await,
            StatusCode::BAD_REQUEST,
            code,
            field,
        );
    }
    let (_, v) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(v["data"]["total"], 0, "nothing stored");
}

/// Issue 12: `extract/memory` answers what an add would remember, and stores nothing.
#[tokio::test]
async fn extract_memory_answers_without_storing() {
    let s = TestServer::new().await;
    let messages = json!([
        {"role": "user", "content": "I live in Lisbon and I work as a nurse."},
        {"role": "assistant", "content": "Nice! How can I help?"},
        {"role": "user", "content": "I love jazz."}
    ]);
    let (st, v) = s
        .post(
            "extract/memory",
            json!({"messages": messages, "extraction_types": ["memory", "preference"], "model": null}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let memory = v["data"]["memory"].as_array().unwrap();
    let preference = v["data"]["preference"].as_array().unwrap();
    assert!(
        memory
            .iter()
            .any(|m| m["memory_value"].as_str().unwrap().contains("Lisbon")),
        "{v}"
    );
    assert!(
        preference
            .iter()
            .any(|p| p["preference"].as_str().unwrap().contains("jazz")),
        "{v}"
    );
    assert!(
        memory.iter().all(|m| m.get("id").is_none()),
        "nothing stored, no ids"
    );
    let (_, v) = s
        .post(
            "extract/memory",
            json!({"messages": messages, "extraction_types": ["preference"]}),
        )
        .await;
    assert!(v["data"].get("memory").is_none(), "{v}");
    for (body, code, field) in [
        (
            json!({"messages": messages, "extraction_types": ["facts"]}),
            40000,
            "extraction_types[0]",
        ),
        (
            json!({"messages": messages, "extraction_types": []}),
            40003,
            "extraction_types",
        ),
        (
            json!({"messages": messages, "model": "gpt-4"}),
            40000,
            "model",
        ),
        (json!({"messages": []}), 40003, "messages"),
        (json!({}), 40002, "messages"),
    ] {
        assert_error(
            &s.post("extract/memory", body).await,
            StatusCode::BAD_REQUEST,
            code,
            field,
        );
    }
    for user in ["extract", "u"] {
        let (_, v) = s.post("get/memory", json!({"user_id": user})).await;
        assert_eq!(v["data"]["total"], 0, "nothing stored");
    }
}
