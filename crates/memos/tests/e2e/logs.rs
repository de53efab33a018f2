//! `MEMOS_LOG_FORMAT=json` (issue 15): every log line of the real binary is one JSON object,
//! and a request's access line carries its request id and route.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::BIN;

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("MEMOS_API_KEY", "json-logs-key")
        .env("MEMOS__EMBED__MODEL_DIR", "")
        .env("MEMOS_LOG", "info")
        .env("MEMOS_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("memos listening on ")
        .unwrap()
        .to_string();
    let resp = reqwest::Client::new()
        .get(format!("{url}/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let mut found = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        found = lines.into_iter().find(|l| l["request_id"] == "trace-me-42");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = found.expect("no access line for the request");
    assert_eq!(line["route"], "/health", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
}
