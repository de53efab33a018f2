//! The seed's Python example, run verbatim but for base URL and key, against the real
//! server; and a second project that cannot read the first's memories.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Server, memos, shared_dir};

const SEED_BASE_URL: &str = "https://memos.memtensor.cn/api/openmem/v1";

/// The first Python block of the seed's search example.
fn seed_script() -> Option<String> {
    let Some(dir) = shared_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide ../shared/seed (or MEMOS_SHARED_DIR)"
        );
        eprintln!(
            "skipping: ../shared/seed not found; set MEMOS_SHARED_DIR to run the seed example"
        );
        return None;
    };
    let md = std::fs::read_to_string(dir.join("seed/search-memory-examples.md")).unwrap();
    let start = md.find("```python").expect("a python block") + "```python".len();
    let end = start + md[start..].find("```").expect("closing fence");
    Some(md[start..end].to_string())
}

/// Python prints the response as a dict repr; turn it into JSON.
fn python_result_to_json(stdout: &str) -> Value {
    let repr = stdout
        .split_once("result: ")
        .expect("the script prints `result: ...`")
        .1;
    let out = Command::new("python3")
        .args([
            "-c",
            "import ast, json, sys; print(json.dumps(ast.literal_eval(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(repr.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    serde_json::from_slice(&out.stdout).expect("the printed result is a Python literal")
}

#[tokio::test]
async fn the_seed_python_example_works_by_changing_only_base_url_and_key() {
    let Some(script) = seed_script() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "e2e-seed-key");
    server
        .add(
            "memos_user_345",
            "memos_conversation_345",
            json!([
                {"role": "user", "content": "I love spicy food, but I don't like heavy or oily dishes such as hotpot or spicy beef soup.", "chat_time": "2025-09-20T19:00:00+08:00"},
                {"role": "assistant", "content": "Noted: light but spicy dishes suit you best. I can recommend some when you need them.", "chat_time": "2025-09-20T19:00:10+08:00"},
                {"role": "user", "content": "I'm planning a trip to Yunnan during the National Day holiday.", "chat_time": "2025-09-20T19:01:00+08:00"},
                {"role": "user", "content": "Also my sister is getting married next spring.", "chat_time": "2025-09-20T19:02:00+08:00"}
            ]),
        )
        .await;
    let script = script
        .replace("YOUR_API_KEY", &server.key)
        .replace(SEED_BASE_URL, &server.base());
    assert!(
        !script.contains("memtensor.cn"),
        "the base URL was replaced"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the seed script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = python_result_to_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(result["code"], 0, "{result}");
    assert_eq!(result["message"], "ok");
    let list = result["data"]["memory_detail_list"].as_array().unwrap();
    // The user's statement comes back as a profile item shaped like the seed's own answer.
    let spicy = list
        .iter()
        .find(|m| m["memory_key"] == "User's food preferences")
        .unwrap_or_else(|| panic!("the food-preference memory is missing from {list:?}"));
    assert!(
        spicy["memory_value"]
            .as_str()
            .unwrap()
            .starts_with("[user viewpoint] The user loves spicy food"),
        "{spicy}"
    );
    for field in [
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
    ] {
        assert!(spicy.get(field).is_some(), "missing {field}: {spicy}");
    }
    assert_eq!(spicy["conversation_id"], "memos_conversation_345");
    assert_eq!(spicy["memory_type"], "UserMemory");
    assert_eq!(spicy["status"], "activated");
    assert_eq!(spicy["memory_time"], "2025-09-20T11:00:00.000Z");
    assert!(
        spicy["tags"].as_array().unwrap().contains(&json!("spicy")),
        "{spicy}"
    );
    let r = spicy["relativity"].as_f64().unwrap();
    assert!(r > 0.0 && r <= 1.0);
    assert_eq!(spicy["sources"][0]["role"], "user");
    // The trip memory matches the query best and comes first.
    assert!(
        list[0]["memory_value"].as_str().unwrap().contains("Yunnan"),
        "{list:?}"
    );
    assert!(list.len() <= 6, "the default limit is 6");
}

#[tokio::test]
async fn a_second_project_cannot_read_the_first() {
    let dir = tempfile::tempdir().unwrap();
    // A key for another project, made with the CLI before the server starts.
    let other = memos(
        &["keys", "create", "--project", "other", "--label", "e2e"],
        dir.path(),
    )
    .trim()
    .to_string();
    assert!(other.starts_with("mk_"), "{other}");
    assert!(memos(&["keys", "list"], dir.path()).contains("other"));
    let server = Server::start(dir.path(), "e2e-first-project-key");
    server
        .add(
            "alice",
            "c1",
            json!([{"role": "user", "content": "My passport number ends in 4471."}]),
        )
        .await;
    let (s, v) = server
        .post(
            "search/memory",
            json!({"user_id": "alice", "query": "passport number"}),
        )
        .await;
    assert_eq!(s, 200);
    let id = v["data"]["memory_detail_list"][0]["id"]
        .as_str()
        .expect("the owner finds it")
        .to_string();

    let (s, v) = server
        .post_as(
            &other,
            "search/memory",
            json!({"user_id": "alice", "query": "passport number"}),
        )
        .await;
    assert_eq!((s, &v["data"]["memory_detail_list"]), (200, &json!([])));
    let (_, v) = server
        .post_as(&other, "get/memory", json!({"user_id": "alice"}))
        .await;
    assert_eq!(v["data"]["total"], 0);
    let (s, v) = server
        .post_as(&other, "delete/memory", json!({"memory_ids": [id]}))
        .await;
    assert_eq!((s, v["code"].as_i64()), (404, Some(40307)));
    let (s, v) = server
        .post_as(
            "not-a-key",
            "search/memory",
            json!({"user_id": "alice", "query": "passport"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_i64(), &v["data"]),
        (401, Some(40132), &Value::Null)
    );
}
