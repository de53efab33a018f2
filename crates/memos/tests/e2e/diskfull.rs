//! Issue 13, a full disk: the embedded store's data directory on a small tmpfs that a filler
//! file fills up. While it is full, an add either answers 200 and is stored or answers an
//! error in the envelope and stores nothing (so a client's retry never duplicates); an async
//! add is refused the same way; a restart on the full disk says the disk is full; after the
//! space is freed adds work again, and a restart finds every acknowledged write.
//!
//! Mounting needs root (CAP_SYS_ADMIN), as CI's machines give; elsewhere the test says so
//! and passes without running.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::Server;

/// A tmpfs mounted for the test's lifetime; unmounted (lazily) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system refuses more.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 64] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).and_then(|()| f.sync_all()).is_ok() {}
    }
}

/// Every memory value of user `u`, page by page.
async fn values(server: &Server) -> Vec<String> {
    let mut out = Vec::new();
    for page in 1.. {
        let (s, v) = server
            .post(
                "get/memory",
                json!({"user_id": "u", "size": 50, "page": page}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let list = v["data"]["memory_detail_list"].as_array().unwrap();
        out.extend(
            list.iter()
                .map(|m| m["memory_value"].as_str().unwrap().to_string()),
        );
        if list.len() < 50 {
            break;
        }
    }
    out
}

async fn add(server: &Server, text: &str, async_mode: bool) -> (u16, Value) {
    server
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "async_mode": async_mode,
                   "messages": [{"role": "user", "content": text}]}),
        )
        .await
}

#[tokio::test]
async fn issue_13_a_full_disk_stores_nothing_half_way_and_recovers() {
    let Some(fs) = Tmpfs::mount(48) else {
        eprintln!("skipped: this machine does not allow mounting a tmpfs (needs root)");
        return;
    };
    let data: PathBuf = fs.path().join("data");
    // A short task lease: a task that hit the full disk is taken up again soon.
    let env = [("MEMOS__STORE__TASK_LEASE_MS", "1500")];
    let server = Server::start_env(&data, "disk-full-key", &[], &env);
    for i in 0..5 {
        let (s, v) = add(
            &server,
            &format!("Before the disk filled, note {i} says plums."),
            false,
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }

    let filler = fs.path().join("filler");
    fill(&filler);
    let (mut stored, mut refused, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..20 {
        let text = format!("While the disk was full, note {i} says quinces.");
        let (s, v) = add(&server, &text, i % 4 == 3).await;
        match (s, v["data"]["task_id"].as_str()) {
            (200, Some(task)) => tasks.push(task.to_string()),
            (200, None) => stored.push(text),
            _ => {
                assert!(s >= 500, "{s} {v}");
                assert!(v["code"].is_number() && v["message"].is_string(), "{v}");
                refused.push(text);
            }
        }
    }
    assert!(!refused.is_empty(), "the disk never looked full");
    // A restart on the full disk either serves (reads need no space) or, when SQLite
    // cannot open its files, says the disk is full.
    server.kill();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(crate::common::BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .env("MEMOS_API_KEY", "disk-full-key")
        .env("MEMOS__EMBED__MODEL_DIR", "")
        .stdout(std::fs::File::create(log.path()).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let serving =
        || std::fs::read_to_string(log.path()).is_ok_and(|l| l.contains("memos listening on"));
    while child.try_wait().unwrap().is_none() && !serving() && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if child.try_wait().unwrap().is_some() {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("disk holding it is full"), "{said}");
    } else {
        assert!(serving(), "neither serving nor failing after 20 s");
        let _ = child.kill();
        let _ = child.wait();
    }

    std::fs::remove_file(&filler).unwrap();
    let server = Server::start_env(&data, "disk-full-key", &[], &env);
    for task in &tasks {
        let mut status = String::new();
        for _ in 0..300 {
            let (_, v) = server.post("get/status", json!({"task_id": task})).await;
            status = v["data"]["status"].as_str().unwrap_or_default().to_string();
            if status != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, "completed", "task {task} did not recover");
    }
    let after = "After the space came back, a note says figs.".to_string();
    let (s, v) = add(&server, &after, false).await;
    assert_eq!(s, 200, "{v}");
    stored.push(after);

    // Restarted: every acknowledged write is there, nothing of a refused one.
    server.kill();
    let server = Server::start_env(&data, "disk-full-key", &[], &env);
    let now = values(&server).await;
    let has = |text: &str| now.iter().any(|v| v.contains(text.trim_end_matches('.')));
    for text in &stored {
        assert!(has(text), "acknowledged add lost: {text}; stored: {now:#?}");
    }
    for text in &refused {
        assert!(!has(text), "a refused add was stored: {text}");
    }
    eprintln!(
        "disk full: {} adds stored, {} refused, {} async adds completed after the space came back",
        stored.len(),
        refused.len(),
        tasks.len()
    );
}
