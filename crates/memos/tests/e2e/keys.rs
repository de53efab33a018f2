//! Issue 13: keys are managed while the server runs. `memos keys create` and `revoke` open
//! the store beside the server (not a second service, which would wait for the index lock),
//! and a revoked key fails its very next request, with no restart.

use serde_json::json;

use crate::common::{Server, memos};

#[tokio::test]
async fn issue_13_keys_created_and_revoked_while_serving_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "e2e-boot-key");
    server
        .add(
            "u",
            "c",
            json!([{"role": "user", "content": "I keep bees."}]),
        )
        .await;
    let secret = memos(
        &["keys", "create", "--project", "live", "--label", "e2e"],
        dir.path(),
    )
    .trim()
    .to_string();
    let search = json!({"user_id": "u", "query": "bees"});
    let (s, v) = server
        .post_as(&secret, "search/memory", search.clone())
        .await;
    assert_eq!(s, 200, "a key made while serving works at once: {v}");
    let list = memos(&["keys", "list"], dir.path());
    let id = list
        .lines()
        .find(|l| l.contains(" live "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the new key is listed: {list}"))
        .to_string();
    memos(&["keys", "revoke", &id], dir.path());
    let (s, v) = server
        .post_as(&secret, "search/memory", search.clone())
        .await;
    assert_eq!(s, 401, "revoked while serving, refused at once: {v}");
    assert_eq!(v["code"], 40132);
    // The server's own key and its data are untouched, and its tasks still run.
    let (s, v) = server
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c",
                   "messages": [{"role": "user", "content": "I keep goats too."}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let task = v["data"]["task_id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..500 {
        let (_, t) = server.post("get/status", json!({"task_id": task})).await;
        status = t["data"]["status"].as_str().unwrap_or_default().to_string();
        if status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, "completed");
}

/// Issue 13: a client that sends headers and part of a body, then stalls, is cut off when
/// the body timeout runs out (answered in the envelope); one that stalls inside its headers
/// is disconnected after as long; and the server keeps serving.
#[tokio::test]
async fn issue_13_a_half_sent_body_is_cut_off_and_the_server_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_env(
        dir.path(),
        "e2e-slow-key",
        &[],
        &[("MEMOS__SERVER__BODY_TIMEOUT_MS", "500")],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/openmem/v1/search/memory HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Token e2e-slow-key\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"user_id\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        slow.push(s);
    }
    let started = std::time::Instant::now();
    for mut s in slow {
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server held a half-sent request");
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("\"code\":40000"), "{text}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Half-sent headers: the connection is closed once the same timeout runs out.
    let mut heads = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /api/openmem/v1/search/memory HTTP/1.1\r\nHost: x\r\nAuthor")
            .await
            .unwrap();
        heads.push(s);
    }
    for mut s in heads {
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server held a half-sent head");
    }
    let (s, _) = server
        .post("search/memory", json!({"user_id": "u", "query": "x"}))
        .await;
    assert_eq!(s, 200, "still serving");
}
