//! The API's behaviour for well-formed requests.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

const FIELDS: &[&str] = &[
    "id",
    "memory_key",
    "memory_value",
    "memory_type",
    "memory_time",
    "conversation_id",
    "status",
    "confidence",
    "tags",
    "create_time",
    "update_time",
    "relativity",
    "sources",
];

fn food_conversation() -> Value {
    json!([
        {"role": "user", "content": "I love spicy food, but I don't like heavy or oily dishes like hotpot.", "chat_time": "2025-09-12T10:00:00Z"},
        {"role": "assistant", "content": "Got it, light but spicy dishes it is.", "chat_time": "2025-09-12T10:00:05Z"},
        {"role": "user", "content": "I'm planning a trip to Yunnan for National Day.", "chat_time": "2025-09-12T10:01:00Z"}
    ])
}

#[tokio::test]
async fn health_needs_no_key() {
    let s = TestServer::new().await;
    let req = axum::http::Request::get("/health")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(s.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["search"]["lexical"], "bm25");
    assert!(
        v["search"]["dense"].as_str().unwrap().starts_with("off"),
        "these tests run without a model: {v}"
    );
    assert!(
        v["extraction"]["llm"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
}

#[tokio::test]
async fn sync_add_is_searchable_with_every_field() {
    let s = TestServer::new().await;
    let ids = s.add("u1", "conv-1", food_conversation()).await;
    assert_eq!(
        ids.len(),
        5,
        "three turns and the two facts the user states"
    );
    let list = s
        .search(json!({"user_id": "u1", "query": "What spicy food does the user like?"}))
        .await;
    let top = &list[0];
    for f in FIELDS {
        assert!(top.get(*f).is_some(), "missing {f} in {top}");
    }
    assert!(
        top["memory_value"].as_str().unwrap().contains("spicy"),
        "{top}"
    );
    assert_eq!(top["memory_type"], "UserMemory");
    assert_eq!(top["memory_time"], "2025-09-12T10:00:00.000Z");
    assert_eq!(top["status"], "activated");
    let rel = top["relativity"].as_f64().unwrap();
    assert!(rel > 0.0 && rel <= 1.0, "{rel}");
    assert_eq!(top["sources"][0]["role"], "user");
    assert_eq!(top["sources"][0]["chat_time"], "2025-09-12T10:00:00.000Z");
    assert!(ids.contains(&top["id"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn async_add_reports_its_task_and_keeps_ids() {
    let s = TestServer::new().await;
    let (st, v) = s
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": food_conversation()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    let task_id = v["data"]["task_id"].as_str().unwrap().to_string();
    let mut done = json!(null);
    for _ in 0..200 {
        let (_, t) = s.post("get/status", json!({"task_id": task_id})).await;
        if t["data"]["status"] == "completed" {
            done = t;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = done["data"]["memory_ids"]
        .as_array()
        .expect("task completed")
        .clone();
    assert_eq!(ids.len(), 5);
    let (st, m) = s
        .get(&format!(
            "/api/openmem/v1/get/memory/{}",
            ids[0].as_str().unwrap()
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["data"]["id"], ids[0]);
    assert!(
        !s.search(json!({"user_id": "u", "query": "Yunnan trip"}))
            .await
            .is_empty()
    );
    assert_error(
        &s.post("get/status", json!({"task_id": "nope"})).await,
        StatusCode::NOT_FOUND,
        50131,
        "task",
    );
}

#[tokio::test]
async fn chat_times_accept_iso_and_epoch_and_the_log_is_in_chat_order() {
    let s = TestServer::new().await;
    s.add("u", "c", json!([
        {"role": "user", "content": "third message, sent in epoch ms", "chat_time": 1_700_000_300_000i64, "message_id": "m3", "name": "Ann"},
        {"role": "user", "content": "first message", "chat_time": "2023-11-14T22:13:20Z", "message_id": "m1"},
        {"role": "assistant", "content": "second message", "chat_time": "2023-11-14 22:15:00", "message_id": "m2"}
    ]))
    .await;
    let (st, v) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c", "message_limit_number": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let list = v["data"]["message_detail_list"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m2", "m3"], "newest two, newest last");
    assert_eq!(list[1]["name"], "Ann");
    assert_eq!(list[1]["chat_time"], "2023-11-14T22:18:20.000Z");
    let hit = &s
        .search(json!({"user_id": "u", "query": "third message epoch"}))
        .await[0];
    assert_eq!(hit["memory_time"], "2023-11-14T22:18:20.000Z");
    assert_eq!(hit["sources"][0]["message_id"], "m3");
    assert_eq!(hit["sources"][0]["name"], "Ann");
}

#[tokio::test]
async fn conversation_boosts_but_never_filters() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "old",
        json!([{"role": "user", "content": "My favourite tea is green tea from Yunnan."}]),
    )
    .await;
    s.add(
        "u",
        "now",
        json!([{"role": "user", "content": "My favourite tea is oolong tea."}]),
    )
    .await;
    let plain = s
        .search(json!({"user_id": "u", "query": "favourite tea"}))
        .await;
    assert_eq!(plain.len(), 4, "each turn and its profile item");
    for conv in ["old", "now"] {
        let list = s
            .search(json!({"user_id": "u", "query": "favourite tea", "conversation_id": conv}))
            .await;
        assert_eq!(list.len(), 4, "the other conversation is still returned");
        assert_eq!(
            list[0]["conversation_id"], conv,
            "the boost lifts it to the top"
        );
        for item in &list {
            // The newest items of the current conversation show as working memory.
            assert_eq!(
                item["memory_type"] == "WorkingMemory",
                item["conversation_id"] == conv,
                "{item}"
            );
        }
    }
}

#[tokio::test]
async fn filters_apply_inside_the_search() {
    let s = TestServer::new().await;
    // 30 memories about coffee; only every third one carries the tag.
    for i in 0..30 {
        let tags = if i % 3 == 0 {
            json!(["work"])
        } else {
            json!(["home"])
        };
        let (st, v) = s
            .post("add/message", json!({
                "user_id": "u", "conversation_id": format!("c{i}"), "async_mode": false, "tags": tags,
                "agent_id": if i % 2 == 0 { "even" } else { "odd" }, "info": {"scene": format!("s{}", i % 5)},
                "messages": [{"role": "user", "content": format!("Coffee number {i} is served every morning")}]
            }))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let list = s.search(json!({"user_id": "u", "query": "coffee", "filter": {"and": [{"tags": {"contains": "work"}}]}})).await;
    assert_eq!(list.len(), 6, "a filtered search still fills the limit");
    assert!(
        list.iter()
            .all(|m| m["tags"].as_array().unwrap().contains(&json!("work")))
    );
    let list = s
        .search(
            json!({"user_id": "u", "query": "coffee", "memory_limit_number": 25,
            "filter": {"and": [{"agent_id": "even"}, {"scene": "s0"}]}}),
        )
        .await;
    // i in 0..30 with i even and i % 5 == 0: 0, 10, 20.
    assert_eq!(list.len(), 3, "{list:?}");
    let list = s
        .search(
            json!({"user_id": "u", "query": "coffee", "memory_limit_number": 25,
            "filter": {"or": [{"info.scene": "s1"}, {"info.scene": "s2"}]}}),
        )
        .await;
    assert_eq!(list.len(), 12);
}

#[tokio::test]
async fn query_time_hides_later_memories() {
    let s = TestServer::new().await;
    s.add("u", "c", json!([
        {"role": "user", "content": "I live in Beijing.", "chat_time": "2020-01-01T00:00:00Z"},
        {"role": "user", "content": "I moved to Shanghai, I live there now.", "chat_time": "2024-01-01T00:00:00Z"}
    ]))
    .await;
    let values = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|m| m["memory_value"].as_str().unwrap().to_string())
            .collect()
    };
    let now = s
        .search(json!({"user_id": "u", "query": "where do I live"}))
        .await;
    // Both turns, and the current profile item: the move archived the Beijing one.
    assert_eq!(now.len(), 3, "{:?}", values(&now));
    assert!(
        !values(&now)
            .iter()
            .any(|v| v.starts_with("[user viewpoint] The user lives in Beijing"))
    );
    let then = s
        .search(json!({"user_id": "u", "query": "where do I live", "query_time": "2021-06-01"}))
        .await;
    // Back then: the Beijing turn and the profile item that was current.
    assert_eq!(then.len(), 2, "{:?}", values(&then));
    assert!(values(&then).iter().all(|v| v.contains("Beijing")));
    let archived = then
        .iter()
        .find(|m| m["memory_type"] == "UserMemory")
        .unwrap();
    assert_eq!(archived["status"], "archived");
    let (st, v) = s
        .post("get/history", json!({"memory_id": archived["id"]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["history"][0]["kind"], "superseded");
    assert!(
        v["data"]["history"][0]["note"]
            .as_str()
            .unwrap()
            .contains("Shanghai")
    );
}

#[tokio::test]
async fn chinese_is_searchable() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "c",
        json!([
            {"role": "user", "content": "我喜欢吃辣的，但不喜欢油腻的火锅。"},
            {"role": "user", "content": "我每天早上跑步五公里。"}
        ]),
    )
    .await;
    let list = s
        .search(json!({"user_id": "u", "query": "我的运动习惯是什么？跑步"}))
        .await;
    assert!(
        list[0]["memory_value"].as_str().unwrap().contains("跑步"),
        "{list:?}"
    );
    let list = s.search(json!({"user_id": "u", "query": "火锅"})).await;
    assert_eq!(list.len(), 2, "the turn and its profile item");
    let profile = list
        .iter()
        .find(|m| m["memory_type"] == "UserMemory")
        .unwrap();
    assert_eq!(profile["memory_key"], "用户的饮食偏好");
    assert!(
        profile["memory_value"]
            .as_str()
            .unwrap()
            .starts_with("[用户观点] 用户喜欢吃辣的"),
        "{profile}"
    );
}

#[tokio::test]
async fn relativity_is_calibrated_across_queries() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "c",
        json!([
            {"role": "user", "content": "My sister Alice plays the violin in an orchestra."},
            {"role": "user", "content": "I bought a new bicycle last weekend."},
            {"role": "user", "content": "The weather was rainy all week."}
        ]),
    )
    .await;
    let full = s
        .search(json!({"user_id": "u", "query": "sister violin orchestra"}))
        .await;
    let partial = s
        .search(json!({"user_id": "u", "query": "sister cooking recipes garden"}))
        .await;
    let (f, p) = (
        full[0]["relativity"].as_f64().unwrap(),
        partial[0]["relativity"].as_f64().unwrap(),
    );
    assert!(
        f > 0.7,
        "a memory covering the whole query scores high: {f}"
    );
    assert!(
        p < 0.5,
        "a memory covering a quarter of the query scores low: {p}"
    );
    assert!(
        s.search(json!({"user_id": "u", "query": "quantum chromodynamics"}))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn projects_never_see_each_other() {
    let s = TestServer::new().await;
    let ids = s
        .add(
            "shared-user",
            "c",
            json!([{"role": "user", "content": "My bank PIN hint is the cat's name."}]),
        )
        .await;
    let other = |path: &'static str, body: Value| {
        let s = &s;
        async move { s.post_as(&s.other_key, path, body).await }
    };
    let (_, v) = other(
        "search/memory",
        json!({"user_id": "shared-user", "query": "bank PIN hint cat"}),
    )
    .await;
    assert_eq!(v["data"]["memory_detail_list"], json!([]));
    let (_, v) = other("get/memory", json!({"user_id": "shared-user"})).await;
    assert_eq!(v["data"]["total"], 0);
    let (_, v) = other(
        "get/message",
        json!({"user_id": "shared-user", "conversation_id": "c"}),
    )
    .await;
    assert_eq!(v["data"]["message_detail_list"], json!([]));
    assert_error(
        &other("delete/memory", json!({"memory_ids": ids})).await,
        StatusCode::NOT_FOUND,
        40307,
        "memory",
    );
    assert_error(
        &other("delete/memory", json!({"user_id": "shared-user"})).await,
        StatusCode::NOT_FOUND,
        40308,
        "user",
    );
    let req = axum::http::Request::get(format!("/api/openmem/v1/get/memory/{}", ids[0]))
        .header("authorization", format!("Token {}", s.other_key))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(s.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // And the owner still has it all.
    assert_eq!(
        s.search(json!({"user_id": "shared-user", "query": "bank PIN"}))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn auth_errors_reveal_nothing() {
    let s = TestServer::new().await;
    let body = json!({"user_id": "u", "query": "x"}).to_string();
    assert_error(
        &s.raw("search/memory", None, body.clone()).await,
        StatusCode::UNAUTHORIZED,
        40100,
        "API key",
    );
    assert_error(
        &s.raw("search/memory", Some("Token wrong"), body.clone())
            .await,
        StatusCode::UNAUTHORIZED,
        40132,
        "invalid",
    );
    assert_error(
        &s.raw("search/memory", Some("Token "), body.clone()).await,
        StatusCode::UNAUTHORIZED,
        40100,
        "API key",
    );
    // Auth is checked before the body is read: a bad body with a bad key is still 401.
    assert_error(
        &s.raw("add/message", Some("Token wrong"), "{not json").await,
        StatusCode::UNAUTHORIZED,
        40132,
        "invalid",
    );
    let keys = s.service.store().list_keys().await.unwrap();
    let alpha = keys.iter().find(|k| k.project_id == "alpha").unwrap();
    s.service.store().revoke_key(&alpha.id, 1).await.unwrap();
    assert_error(
        &s.post("search/memory", json!({"user_id": "u", "query": "x"}))
            .await,
        StatusCode::UNAUTHORIZED,
        40132,
        "invalid",
    );
    // Bearer works too, for OpenAI-style clients.
    let (st, _) = s
        .raw(
            "search/memory",
            Some(&format!("Bearer {}", s.other_key)),
            body,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn deletes_are_all_or_nothing_and_users_can_be_erased() {
    let s = TestServer::new().await;
    let ids = s
        .add(
            "u",
            "c",
            json!([
                {"role": "user", "content": "I have a peanut allergy."},
                {"role": "user", "content": "I own a red bicycle."}
            ]),
        )
        .await;
    assert_error(
        &s.post(
            "delete/memory",
            json!({"memory_ids": [ids[0], "missing-id"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        40307,
        "missing-id",
    );
    assert_eq!(
        s.search(json!({"user_id": "u", "query": "peanut allergy"}))
            .await
            .len(),
        2,
        "nothing deleted"
    );
    // The turn and the profile item made from it.
    let (st, v) = s
        .post("delete/memory", json!({"memory_ids": [ids[0], ids[1]]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 2);
    assert!(
        s.search(json!({"user_id": "u", "query": "peanut allergy"}))
            .await
            .is_empty()
    );
    let (st, v) = s.post("delete/memory", json!({"user_id": "u"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 2);
    assert!(
        s.search(json!({"user_id": "u", "query": "bicycle"}))
            .await
            .is_empty()
    );
    let (_, v) = s
        .post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await;
    assert_eq!(
        v["data"]["message_detail_list"],
        json!([]),
        "the chat log goes too"
    );
    assert_error(
        &s.post("delete/memory", json!({"user_id": "u"})).await,
        StatusCode::NOT_FOUND,
        40308,
        "user",
    );
}

#[tokio::test]
async fn get_memory_pages_and_filters() {
    let s = TestServer::new().await;
    for i in 0..7 {
        s.add("u", "c", json!([{"role": "user", "content": format!("note number {i}"), "chat_time": 1_700_000_000_000i64 + i}])).await;
    }
    let (st, v) = s
        .post("get/memory", json!({"user_id": "u", "page": 2, "size": 3}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(
        (
            d["total"].as_u64(),
            d["pages"].as_u64(),
            d["current"].as_u64()
        ),
        (Some(7), Some(3), Some(2))
    );
    assert_eq!(d["memory_detail_list"].as_array().unwrap().len(), 3);
    assert!(d["memory_detail_list"][0].get("relativity").is_none());
    let (_, v) = s
        .post("get/memory", json!({"user_id": "u", "filter": {"and": [{"memory_time": {"gte": 1_700_000_000_005i64}}]}}))
        .await;
    assert_eq!(v["data"]["total"], 2);
}

#[tokio::test]
async fn unknown_routes_answer_in_the_envelope() {
    let s = TestServer::new().await;
    assert_error(
        &s.post("no/such/thing", json!({})).await,
        StatusCode::NOT_FOUND,
        40001,
        "endpoint",
    );
}

#[tokio::test]
async fn stated_preferences_come_back_with_the_search_and_the_profile_groups_facts() {
    let s = TestServer::new().await;
    s.add(
        "u",
        "c",
        json!([
            {"role": "user", "content": "I love spicy food but I don't like oily hotpot. I hate cilantro.", "chat_time": "2025-09-12T10:00:00Z"},
            {"role": "assistant", "content": "Noted, no cilantro then!", "chat_time": "2025-09-12T10:00:30Z"},
            {"role": "user", "content": "I adopted a puppy yesterday.", "chat_time": "2025-09-12T10:01:00Z"},
            {"role": "user", "content": "我不喜欢香菜。", "chat_time": "2025-09-12T10:02:00Z"}
        ]),
    )
    .await;
    let (st, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "spicy food or cilantro? 香菜 puppy"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let prefs = v["data"]["preference_detail_list"].as_array().unwrap();
    let texts: Vec<&str> = prefs
        .iter()
        .map(|p| p["preference"].as_str().unwrap())
        .collect();
    assert_eq!(prefs.len(), 3, "{texts:?}");
    assert!(texts.contains(&"The user loves spicy food but the user does not like oily hotpot."));
    assert!(texts.contains(&"The user hates cilantro."));
    assert!(texts.contains(&"用户不喜欢香菜。"));
    assert!(
        !texts.iter().any(|t| t.contains("puppy")),
        "not a preference"
    );
    for p in prefs {
        assert_eq!(p["preference_type"], "explicit_preference");
        assert_eq!(p["conversation_id"], "c");
        assert!(p["reasoning"].as_str().unwrap().contains("2025-09-12"));
    }
    let cilantro = prefs
        .iter()
        .find(|p| p["preference"] == "The user hates cilantro.")
        .unwrap();
    assert_eq!(cilantro["polarity"], "dislike");
    assert!(
        v["data"]["preference_note"]
            .as_str()
            .unwrap()
            .contains("The user hates cilantro."),
        "{v}"
    );
    // Asked not to, or asked for too many.
    let (_, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "cilantro", "include_preference": false}),
        )
        .await;
    assert_eq!(v["data"]["preference_detail_list"], json!([]));
    assert_eq!(v["data"]["preference_note"], "");
    let (st, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "cilantro", "preference_limit_number": 99}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    // The profile: every fact, grouped by topic, biggest group first.
    let (st, v) = s.post("get/profile", json!({"user_id": "u"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["total"], 4);
    let groups = v["data"]["profile"].as_array().unwrap();
    let keys: Vec<&str> = groups
        .iter()
        .map(|g| g["memory_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys[0], "User's food preferences");
    assert_eq!(groups[0]["memory_detail_list"].as_array().unwrap().len(), 2);
    assert!(
        keys.contains(&"User's pets") && keys.contains(&"用户的饮食偏好"),
        "{keys:?}"
    );
    let (_, v) = s
        .post_as(&s.other_key, "get/profile", json!({"user_id": "u"}))
        .await;
    assert_eq!(v["data"]["total"], 0, "another project sees no profile");
}

#[tokio::test]
async fn edits_feedback_and_soft_or_hard_deletes_keep_a_history() {
    let s = TestServer::new().await;
    let ids = s
        .add(
            "u",
            "c",
            json!([{"role": "user", "content": "I like coffee.", "chat_time": "2025-01-01T08:00:00Z"}]),
        )
        .await;
    let fact = ids[1].clone();

    // update/memory, with the SDK's field names.
    let (st, v) = s
        .post(
            "update/memory",
            json!({"memory_id": fact, "content": "[user viewpoint] The user likes strong coffee.", "title": "User's coffee"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["memory"]["memory_key"], "User's coffee");
    let hits = s
        .search(json!({"user_id": "u", "query": "strong coffee"}))
        .await;
    assert_eq!(hits[0]["id"], fact.as_str());
    let (st, v) = s
        .post(
            "update/memory",
            json!({"memory_id": fact, "status": "gone"}),
        )
        .await;
    assert_error(&(st, v), StatusCode::BAD_REQUEST, 40000, "status");
    let (st, v) = s
        .post(
            "update/memory",
            json!({"memory_id": "nope", "content": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // Feedback: the correction words go, the fact supersedes the old one.
    let (st, v) = s
        .post(
            "add/feedback",
            json!({"user_id": "u", "conversation_id": "c", "feedback_content": "That's wrong, I don't like coffee anymore.", "feedback_time": "2025-06-01T08:00:00Z"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "completed");
    let (_, v) = s.post("get/history", json!({"memory_id": fact})).await;
    let kinds: Vec<&str> = v["data"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["updated", "superseded"], "{v}");
    assert_eq!(
        v["data"]["history"][0]["before"],
        "[user viewpoint] The user likes coffee."
    );
    assert_eq!(v["data"]["memory"]["status"], "archived");
    let profile = s.post("get/profile", json!({"user_id": "u"})).await.1;
    let current: Vec<&str> = profile["data"]["profile"][0]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["memory_value"].as_str().unwrap())
        .collect();
    assert_eq!(
        current,
        ["[user viewpoint] The user does not like coffee anymore."]
    );

    // Soft delete by filter: gone from search and lists, history still readable.
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"user_id": "u", "filter": {"and": [{"memory_type": "UserMemory"}]}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deleted_count"], 2);
    assert_eq!(
        s.post("get/profile", json!({"user_id": "u"})).await.1["data"]["total"],
        0
    );
    let (st, v) = s.get(&format!("/api/openmem/v1/get/memory/{fact}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = s.post("get/history", json!({"memory_id": fact})).await;
    assert_eq!(
        v["data"]["history"].as_array().unwrap().last().unwrap()["kind"],
        "deleted"
    );
    // Hard delete (privacy): the history goes too.
    let (st, v) = s
        .post("delete/memory", json!({"memory_ids": [fact], "hard": true}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s.post("get/history", json!({"memory_id": fact})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chinese_repeats_merge_and_changes_archive() {
    let s = TestServer::new().await;
    let first = s
        .add("u", "c", json!([{"role": "user", "content": "我喜欢吃辣的。", "chat_time": "2024-01-01T08:00:00Z"}]))
        .await;
    let again = s
        .add("u", "c", json!([{"role": "user", "content": "我很喜欢吃辣的！", "chat_time": "2024-02-01T08:00:00Z"}]))
        .await;
    assert_eq!(again[1], first[1], "the repeat reports the first fact's id");
    let (_, v) = s.post("get/history", json!({"memory_id": first[1]})).await;
    assert_eq!(v["data"]["history"][0]["kind"], "merged");
    assert_eq!(v["data"]["memory"]["sources"].as_array().unwrap().len(), 2);

    let home = s
        .add("u", "c", json!([{"role": "user", "content": "我住在北京。", "chat_time": "2024-03-01T08:00:00Z"}]))
        .await;
    s.add("u", "c", json!([{"role": "user", "content": "我现在搬到上海了。", "chat_time": "2024-06-01T08:00:00Z"}]))
        .await;
    let (_, v) = s.post("get/history", json!({"memory_id": home[1]})).await;
    assert_eq!(v["data"]["memory"]["status"], "archived", "{v}");
    assert_eq!(v["data"]["history"][0]["kind"], "superseded");
    let (_, v) = s.post("get/profile", json!({"user_id": "u"})).await;
    let values: Vec<&str> = v["data"]["profile"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["memory_detail_list"].as_array().unwrap())
        .map(|m| m["memory_value"].as_str().unwrap())
        .collect();
    assert!(
        values.contains(&"[用户观点] 用户现在搬到上海了。"),
        "{values:?}"
    );
    assert!(
        !values.iter().any(|v| v.contains("北京")),
        "archived items leave the profile: {values:?}"
    );
}
