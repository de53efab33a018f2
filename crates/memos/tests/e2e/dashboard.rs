//! The dashboard (issue 16) in a real browser: Debian's Chromium (`apt-get install
//! chromium`) driven by Playwright (`playwright-core` from npm, pinned with its lockfile in
//! `dashboard/`; `scripts/fetch-dashboard-deps.sh` installs both). This test serves memos,
//! puts data in through the API (two projects, an edit for the history, a knowledge base),
//! then `dashboard/test.mjs` logs in, reads, searches, edits, deletes, switches language,
//! theme and width, and tries a wrong key and the other project's key. Screenshots of each
//! page land in `target/dashboard-screenshots/` as CI artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Server, memos};

/// The browser and the driver, when both are installed.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/dashboard");
    let chromium = PathBuf::from(
        std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string()),
    );
    if dir.join("node_modules/playwright-core").is_dir() && chromium.is_file() {
        return Some((dir, chromium));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Chromium and playwright-core (scripts/fetch-dashboard-deps.sh, run by scripts/test.sh)"
    );
    eprintln!(
        "skipping: run scripts/fetch-dashboard-deps.sh to install Chromium and playwright-core"
    );
    None
}

#[tokio::test]
async fn issue_16_the_dashboard_in_chromium_reads_searches_edits_and_deletes() {
    let Some((dir, chromium)) = tools() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), "dashboard-key-1");
    let other = memos(
        &[
            "keys",
            "create",
            "--project",
            "other",
            "--label",
            "dashboard",
        ],
        data.path(),
    )
    .trim()
    .to_string();

    server
        .add(
            "alice",
            "trip",
            json!([
                {"role": "user", "content": "I love hiking in the mountains every summer.",
                 "chat_time": "2025-06-01T09:00:00Z"},
                {"role": "assistant", "content": "Wonderful, any favourite trail?",
                 "chat_time": "2025-06-01T09:00:05Z"},
            ]),
        )
        .await;
    server
        .add(
            "alice",
            "food",
            json!([{"role": "user", "content": "我对花生过敏，不能吃花生。",
                    "chat_time": "2025-07-01T12:00:00Z"}]),
        )
        .await;
    // A fact that changed, for the search playground's "current fact first" marker.
    server
        .add(
            "alice",
            "home-january",
            json!([{"role": "user", "content": "I live in Beijing.",
                    "chat_time": "2025-01-01T10:00:00Z"}]),
        )
        .await;
    server
        .add(
            "alice",
            "home-october",
            json!([{"role": "user", "content": "I just moved from Beijing to Shanghai.",
                    "chat_time": "2025-10-01T10:00:00Z"}]),
        )
        .await;
    let (_, zed) = server
        .post_as(
            &other,
            "add/message",
            json!({"user_id": "zed", "conversation_id": "z", "async_mode": false,
                   "messages": [{"role": "user", "content": "I collect vintage radios."}]}),
        )
        .await;
    assert_eq!(zed["code"], 0, "{zed}");
    // An edit through the API, so the history has something to show.
    let (_, page) = server
        .post("get/memory", json!({"user_id": "alice", "size": 50}))
        .await;
    let hiking: Vec<String> = page["data"]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["memory_value"].as_str().unwrap().contains("hiking"))
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!hiking.is_empty(), "{page}");
    for id in &hiking {
        let (_, v) = server
            .post(
                "update/memory",
                json!({"user_id": "alice", "memory_id": id, "tags": ["hiking", "summer"]}),
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
    }
    // A knowledge base with one file, for its page.
    let (_, kb) = server
        .post(
            "create/knowledgebase",
            json!({"knowledgebase_name": "Travel guide"}),
        )
        .await;
    let kb_id = kb["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{kb}"))
        .to_string();
    let (_, f) = server
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb_id, "file": [{"name": "guide.md",
                   "content": "IyBUcmF2ZWwgZ3VpZGUKClRoZSBjaXR5IG11c2V1bSBvcGVucyBhdCBuaW5lIGFuZCBpcyBmcmVlIG9uIFN1bmRheXMuCg=="}]}),
        )
        .await;
    assert_eq!(f["code"], 0, "{f}");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(dir.join("test.mjs"))
        .args([
            server.url.as_str(),
            "dashboard-key-1",
            other.as_str(),
            "alice",
            shots.to_str().unwrap(),
        ])
        .env("CHROMIUM", &chromium)
        .current_dir(&dir)
        .output()
        .expect("run node");
    let said = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(said.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "not one JSON line ({e}): {said}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && seen["ok"] == true,
        "the browser test failed (screenshots in {}):\n{}\n{}",
        shots.display(),
        serde_json::to_string_pretty(&seen).unwrap(),
        String::from_utf8_lossy(&out.stderr)
    );
    let kb_page = seen["kb"].as_str().unwrap();
    assert!(
        kb_page.contains("guide.md") && kb_page.contains(&kb_id),
        "{kb_page}"
    );
    // Every page was photographed.
    assert_eq!(seen["screenshots"].as_array().unwrap().len(), 12, "{seen}");
    for s in seen["screenshots"].as_array().unwrap() {
        let len = std::fs::metadata(s.as_str().unwrap()).unwrap().len();
        assert!(len > 5_000, "{s} is {len} bytes");
    }
    // The server's own records agree with what the browser did: one memory soft-deleted,
    // and its edit recorded.
    let (_, deleted) = server
        .post(
            "get/memory",
            json!({"user_id": "alice", "status": ["deleted"]}),
        )
        .await;
    let gone = deleted["data"]["memory_detail_list"].as_array().unwrap();
    assert_eq!(gone.len(), 1, "{deleted}");
    assert!(
        gone[0]["memory_value"].as_str().unwrap().contains("Alps"),
        "{deleted}"
    );
    server.kill();
}
