//! Golden shapes of every endpoint's answer (issue 11): the keys and value types, not the
//! values (ids and times change from run to run). A change of shape fails here and is
//! reviewed on purpose: rerun with `MEMOS_UPDATE_GOLDEN=1` to write the new shapes into
//! `tests/golden/`, and read the diff.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::common::TestServer;

/// A value's shape: objects keep their keys, arrays their first element's shape, scalars
/// become their type's name.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

fn check(name: &str, answer: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let got = serde_json::to_string_pretty(&shape(answer)).unwrap() + "\n";
    if std::env::var_os("MEMOS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no golden shape for {name}; run with MEMOS_UPDATE_GOLDEN=1 and review it")
    });
    assert_eq!(
        got, want,
        "the answer of {name} changed shape; if on purpose, rerun with MEMOS_UPDATE_GOLDEN=1"
    );
}

#[tokio::test]
async fn every_answer_keeps_its_shape() {
    let s = TestServer::new().await;
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let (_, v) = s.post(path, body).await;
            v
        }
    };
    let add = post(
        "add/message",
        json!({"user_id": "u", "conversation_id": "c", "async_mode": false, "messages": [
            {"role": "user", "content": "I live in Lisbon and I love jazz.", "chat_time": "2025-05-03T10:00:00Z"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        ]}),
    )
    .await;
    check("add_message_sync", &add);
    let async_add = post(
        "add/message",
        json!({"user_id": "u", "conversation_id": "c2", "messages": [{"role": "user", "content": "I keep bees."}]}),
    )
    .await;
    check("add_message_async", &async_add);
    let tpl = post(
        "add/profile_template",
        json!({"name": "t", "metadata": {"Basic": {"Name": {"value": "", "algorithm_updatable": true}}}}),
    )
    .await;
    check("add_profile_template", &tpl);
    let tpl = tpl["data"]["profile_template_id"].clone();
    check(
        "update_profile_template",
        &post(
            "update/profile_template",
            json!({"profile_template_id": tpl, "metadata": {"Basic": {"Name": {"value": ""}}}}),
        )
        .await,
    );
    check(
        "bind_profile_template",
        &post(
            "bind/profile_template",
            json!({"bind_list": [{"user_id": "u", "profile_template_id": tpl}]}),
        )
        .await,
    );
    check(
        "edit_profile",
        &post(
            "edit/profile",
            json!({"user_id": "u", "profile_template_id": tpl, "metadata": {"Basic": {"Name": {"value": "Ana"}}}}),
        )
        .await,
    );
    check(
        "get_profile_template",
        &post("get/profile_template", json!({})).await,
    );
    let search = post(
        "search/memory",
        json!({"user_id": "u", "query": "where does the user live jazz", "include_tool_memory": true}),
    )
    .await;
    check("search_memory", &search);
    let id = search["data"]["memory_detail_list"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    check(
        "get_memory",
        &post("get/memory", json!({"user_id": "u"})).await,
    );
    check(
        "get_message",
        &post(
            "get/message",
            json!({"user_id": "u", "conversation_id": "c"}),
        )
        .await,
    );
    let (_, one) = s.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
    check("get_memory_by_id", &one);
    check(
        "get_status",
        &post("get/status", json!({"task_id": add["data"]["task_id"]})).await,
    );
    check(
        "get_profile",
        &post("get/profile", json!({"user_id": "u"})).await,
    );
    check("get_users", &post("get/users", json!({})).await);
    check(
        "update_memory",
        &post("update/memory", json!({"memory_id": id, "tags": ["x"]})).await,
    );
    check(
        "get_history",
        &post("get/history", json!({"memory_id": id})).await,
    );
    check(
        "add_feedback",
        &post(
            "add/feedback",
            json!({"user_id": "u", "conversation_id": "c", "feedback_content": "Actually I live in Porto."}),
        )
        .await,
    );
    check(
        "extract_memory",
        &post(
            "extract/memory",
            json!({"messages": [{"role": "user", "content": "I live in Oslo and I love tea."}]}),
        )
        .await,
    );
    check(
        "rerank",
        &post(
            "rerank",
            json!({"query": "tea", "documents": ["tea", "coffee"]}),
        )
        .await,
    );
    check(
        "delete_profile",
        &post(
            "delete/profile",
            json!({"user_id": "u", "profile_template_id": tpl}),
        )
        .await,
    );
    check(
        "delete_profile_template",
        &post(
            "delete/profile_template",
            json!({"profile_template_id": tpl}),
        )
        .await,
    );
    check(
        "delete_memory",
        &post("delete/memory", json!({"memory_ids": [id]})).await,
    );
    check(
        "error",
        &post("delete/memory", json!({"user_id": "u", "filter": {}})).await,
    );
}
