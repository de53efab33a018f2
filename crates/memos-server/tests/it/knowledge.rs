//! Knowledge bases (issue 14), on both stores: every file type, every bad file, limits,
//! search beside a user's memories, deletes removing chunks, and a second project that
//! cannot see the first's base.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use memos_core::knowledge::fixtures;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{TestServer, assert_error};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn create(s: &TestServer, name: &str) -> String {
    let (st, v) = s
        .post(
            "create/knowledgebase",
            json!({"knowledgebase_name": name, "knowledgebase_description": "policies"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]["id"].as_str().unwrap().to_string()
}

fn every_kind() -> Value {
    json!([
        {"name": "policy.pdf", "content": b64(&fixtures::pdf(&[
            &["Software procurement policy."],
            &["The design software limit is 1000 yuan per seat."]]))},
        {"name": "travel.docx", "content": b64(&fixtures::docx(&[
            (Some("Heading1"), "Trains"),
            (None, "Employees travel second class on trains under four hours.")]))},
        {"name": "notes.txt", "content": b64(b"The office opens at nine.")},
        {"name": "guide.md", "content": b64(b"# Parking\nVisitors park in lot C.")},
        {"name": "limits.json", "content": b64(br#"{"meals": {"dinner_limit": 60}}"#)},
        {"name": "page.html", "content": b64(b"<html><body><h1>Badges</h1><p>Lost badges cost 20 euros.</p></body></html>")},
        {"name": "broken.pdf", "content": b64(b"%PDF-1.4 this is not really a pdf")},
        {"name": "empty.txt", "content": ""},
        {"name": "tool.exe", "content": b64(b"MZ")},
        {"name": "bomb.docx", "content": b64(&fixtures::zipped(&[("word/document.xml", &" ".repeat(70 * 1024 * 1024))]))}
    ])
}

async fn search(s: &TestServer, query: &str, kbs: Value) -> Vec<Value> {
    let (st, v) = s
        .post(
            "search/memory",
            json!({"user_id": "u", "query": query, "knowledgebase_ids": kbs}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]["memory_detail_list"].as_array().unwrap().clone()
}

#[tokio::test]
async fn files_of_every_kind_become_searchable_and_bad_ones_fail_alone() {
    let s = TestServer::new().await;
    let kb = create(&s, "Company policies").await;
    // An empty content is a missing field: the call names it and stores nothing.
    assert_error(
        &s.post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": every_kind()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        40002,
        "file[7].content",
    );
    let mut files = every_kind();
    files[7]["content"] = json!(b64(b"   "));
    let (st, v) = s
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": files}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let out = v["data"].as_array().unwrap();
    assert_eq!(out.len(), 10);
    let status = |name: &str| {
        out.iter()
            .find(|f| f["name"] == name)
            .map(|f| {
                (
                    f["status"].as_str().unwrap().to_string(),
                    f["reason"].clone(),
                )
            })
            .unwrap()
    };
    for good in [
        "policy.pdf",
        "travel.docx",
        "notes.txt",
        "guide.md",
        "limits.json",
        "page.html",
    ] {
        assert_eq!(status(good).0, "COMPLETED", "{good}: {v}");
    }
    for (bad, why) in [
        ("broken.pdf", "PDF"),
        ("empty.txt", "no text"),
        ("tool.exe", ".exe"),
        ("bomb.docx", "unpacks to more than"),
    ] {
        let (st, reason) = status(bad);
        assert_eq!(st, "FAILED", "{bad}");
        assert!(reason.as_str().unwrap().contains(why), "{bad}: {reason}");
    }
    assert!(out[0]["sizeMB"].as_f64().unwrap() > 0.0);
    // A project-wide delete by filter deletes users' memories, never a base's chunks.
    let (st, v) = s
        .post(
            "delete/memory",
            json!({"filter": {"tags": {"contains": "knowledge"}}}),
        )
        .await;
    assert_eq!(
        (st, &v["data"]["deleted_count"]),
        (StatusCode::OK, &json!(0)),
        "{v}"
    );
    let (_, v) = s.post("get/users", json!({})).await;
    assert_eq!(
        v["data"]["user_detail_list"][0]["knowledgebase_id"], kb,
        "{v}"
    );
    assert_eq!(v["data"]["user_detail_list"][0]["user_id"], Value::Null);

    // Found beside the user's memories when the base is named, and only then.
    s.add(
        "u",
        "c",
        json!([{"role": "user", "content": "I design posters in Photoshop."}]),
    )
    .await;
    let hits = search(&s, "design software limit", json!([kb])).await;
    let chunk = hits
        .iter()
        .find(|h| h["memory_value"].as_str().unwrap().contains("1000 yuan"))
        .unwrap_or_else(|| panic!("{hits:?}"));
    assert_eq!(chunk["info"]["file_name"], "policy.pdf");
    assert_eq!(chunk["info"]["page"], 2);
    assert_eq!(chunk["info"]["knowledgebase_id"], kb);
    assert_eq!(chunk["user_id"], Value::Null);
    assert!(
        hits.iter()
            .any(|h| h["memory_value"].as_str().unwrap().contains("Photoshop")),
        "{hits:?}"
    );
    let hits = search(&s, "second class trains", json!("all")).await;
    let chunk = hits
        .iter()
        .find(|h| h["memory_value"].as_str().unwrap().contains("second class"))
        .unwrap_or_else(|| panic!("{hits:?}"));
    assert_eq!(chunk["memory_key"], "travel.docx › Trains");
    for (q, text) in [
        ("lost badges cost", "20 euros"),
        ("dinner limit", "dinner_limit: 60"),
        ("visitors park", "lot C"),
    ] {
        let hits = search(&s, q, json!([kb])).await;
        assert!(
            hits.iter()
                .any(|h| h["memory_value"].as_str().unwrap().contains(text)),
            "{q}: {hits:?}"
        );
    }
    assert!(
        search(&s, "design software limit", json!([]))
            .await
            .iter()
            .all(|h| !h["memory_value"].as_str().unwrap().contains("1000 yuan"))
    );
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "u", "query": "x", "knowledgebase_ids": ["kb_nope"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "kb_nope",
    );

    // Listing, by base (paged) and by id.
    let (_, v) = s
        .post(
            "get/knowledgebase-file",
            json!({"knowledgebase_id": kb, "page": 1, "page_size": 4}),
        )
        .await;
    assert_eq!(
        (
            v["data"]["total"].as_u64(),
            v["data"]["file_detail_list"].as_array().unwrap().len()
        ),
        (Some(10), 4),
        "{v}"
    );
    let pdf_id = out.iter().find(|f| f["name"] == "policy.pdf").unwrap()["id"].clone();
    let (_, v) = s
        .post("get/knowledgebase-file", json!({"file_ids": [pdf_id]}))
        .await;
    assert_eq!(v["data"]["file_detail_list"][0]["chunks"], 2, "{v}");

    // Deleting a file takes its chunks out of search; deleting the base takes the rest.
    let (st, v) = s
        .post("delete/knowledgebase-file", json!({"file_ids": [pdf_id]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        search(&s, "design software limit", json!([kb]))
            .await
            .iter()
            .all(|h| !h["memory_value"].as_str().unwrap().contains("1000 yuan"))
    );
    assert_error(
        &s.post("delete/knowledgebase-file", json!({"file_ids": [pdf_id]}))
            .await,
        StatusCode::NOT_FOUND,
        40001,
        "file",
    );
    let (st, _) = s
        .post("delete/knowledgebase", json!({"knowledgebase_id": kb}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &s.post(
            "search/memory",
            json!({"user_id": "u", "query": "second class", "knowledgebase_ids": [kb]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "knowledge base",
    );
    let hits = search(&s, "second class trains", json!("all")).await;
    assert!(
        hits.iter()
            .all(|h| h["info"].get("knowledgebase_id").is_none()),
        "{hits:?}"
    );
    // The user's own memories stay.
    assert!(!search(&s, "Photoshop", json!([])).await.is_empty());
}

#[tokio::test]
async fn uploads_take_the_sdks_form_and_refuse_what_they_cannot_take() {
    let s = TestServer::new().await;
    let kb = create(&s, "Forms").await;
    // The SDK's add_knowledgebase_file_form: the base in the query, files as parts.
    let boundary = "XyZmemos";
    let mut body = Vec::new();
    for (name, bytes) in [
        (
            "hr.docx",
            fixtures::docx(&[(None, "Vacation is 25 days a year.")]),
        ),
        ("it.txt", b"Passwords rotate every 90 days.".to_vec()),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = Request::post(format!(
        "/api/openmem/v1/add/knowledgebase-file?knowledgebase_id={kb}"
    ))
    .header("authorization", format!("Token {}", s.key))
    .header(
        "content-type",
        format!("multipart/form-data; boundary={boundary}"),
    )
    .body(Body::from(body))
    .unwrap();
    let resp = s.app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "COMPLETED"),
        "{v}"
    );
    let hits = search(&s, "vacation days", json!([kb])).await;
    assert!(
        hits.iter()
            .any(|h| h["memory_value"].as_str().unwrap().contains("25 days")),
        "{hits:?}"
    );

    for (body, code, field) in [
        (
            json!({"knowledgebase_id": kb, "file": [{"content": "https://example.com/a.pdf"}]}),
            40000,
            "file[0].content",
        ),
        (
            json!({"knowledgebase_id": kb, "file": [{"content": "not base64!", "name": "a.txt"}]}),
            40000,
            "file[0].content",
        ),
        (json!({"knowledgebase_id": kb, "file": []}), 40003, "file"),
        (
            json!({"knowledgebase_id": kb, "file": vec![json!({"content": b64(b"x"), "name": "a.txt"}); 21]}),
            50103,
            "20 files",
        ),
        (json!({"knowledgebase_id": kb, "files": []}), 40000, "files"),
        (
            json!({"file": [{"content": b64(b"x")}]}),
            40002,
            "knowledgebase_id",
        ),
    ] {
        let got = s.post("add/knowledgebase-file", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code, field);
    }
    assert_error(
        &s.post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": "kb_nope", "file": [{"content": b64(b"x")}]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "kb_nope",
    );
    let (_, v) = s
        .post("get/knowledgebase-file", json!({"knowledgebase_id": kb}))
        .await;
    assert_eq!(v["data"]["total"], 2, "refused calls stored nothing: {v}");
    // Files are larger than other bodies: this route takes more than the server's 2 MiB.
    let big = "Quarterly numbers rise. ".repeat(110_000);
    assert!(big.len() > 2 * 1024 * 1024);
    let (st, v) = s
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": [{"name": "big.txt", "content": b64(big.as_bytes())}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["status"], "COMPLETED", "{v}");
    let (st, v) = s
        .post(
            "delete/knowledgebase-file",
            json!({"file_ids": [v["data"][0]["id"]]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A user who happens to share the base's id is someone else: erasing them leaves
    // the base alone.
    s.add(
        &kb,
        "c",
        json!([{"role": "user", "content": "I am a user."}]),
    )
    .await;
    let (st, _) = s.post("delete/memory", json!({"user_id": kb})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s
        .post("get/knowledgebase-file", json!({"knowledgebase_id": kb}))
        .await;
    assert_eq!(v["data"]["total"], 2, "{v}");

    // Another project sees none of it.
    let other = s.other_key.clone();
    assert_error(
        &s.post_as(
            &other,
            "search/memory",
            json!({"user_id": "u", "query": "vacation", "knowledgebase_ids": [kb]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "knowledge base",
    );
    let (_, v) = s
        .post_as(
            &other,
            "search/memory",
            json!({"user_id": "u", "query": "vacation days", "knowledgebase_ids": "all"}),
        )
        .await;
    assert_eq!(v["data"]["memory_detail_list"], json!([]), "{v}");
    assert_error(
        &s.post_as(
            &other,
            "get/knowledgebase-file",
            json!({"knowledgebase_id": kb}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "knowledge base",
    );
    assert_error(
        &s.post_as(
            &other,
            "delete/knowledgebase",
            json!({"knowledgebase_id": kb}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "knowledge base",
    );
}

/// With `knowledge.fetch_urls` on, a URL as `content` is downloaded (from a real socket
/// here); a failed download fails that file alone.
#[tokio::test]
async fn urls_are_downloaded_only_when_the_configuration_allows() {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/docs/handbook.md",
        get(|| async { "# Leave\nEveryone gets 30 days of leave." }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = TestServer::with_config(|c| c.knowledge.fetch_urls = true).await;
    let kb = create(&s, "Handbook").await;
    let (st, v) = s
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": [
                {"content": format!("{base}/docs/handbook.md")},
                {"content": format!("{base}/docs/missing.pdf")}
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["name"], "handbook.md");
    assert_eq!(v["data"][0]["status"], "COMPLETED", "{v}");
    assert_eq!(v["data"][1]["status"], "FAILED");
    assert!(
        v["data"][1]["reason"].as_str().unwrap().contains("404"),
        "{v}"
    );
    let hits = search(&s, "days of leave", json!([kb])).await;
    assert!(
        hits.iter()
            .any(|h| h["memory_value"].as_str().unwrap().contains("30 days")),
        "{hits:?}"
    );
}

/// A file whose reading outlasts `knowledge.read_timeout_ms` (standing in for a parser
/// caught in a malformed file: 400 pages against a 1 ms budget) is refused with the reason;
/// the call answers and nothing of it is stored.
#[tokio::test]
async fn a_file_that_takes_too_long_to_read_is_refused_alone() {
    let s = TestServer::with_config(|c| c.knowledge.read_timeout_ms = 1).await;
    let kb = create(&s, "Slow").await;
    let page: &[&str] = &["A page that never gets read, with a few more words on it."];
    let pdf = fixtures::pdf(&vec![page; 400]);
    let (st, v) = s
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": [{"name": "slow.pdf", "content": b64(&pdf)}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"][0]["status"], "FAILED", "{v}");
    assert!(
        v["data"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("took longer than 1 ms"),
        "{v}"
    );
    assert!(search(&s, "never gets read", json!([kb])).await.is_empty());
}

/// The files of one `get/knowledgebase-file` by ids, once none is `PROCESSING` any more.
async fn settled(s: &TestServer, ids: &[&str]) -> Vec<Value> {
    for _ in 0..500 {
        let (st, v) = s
            .post("get/knowledgebase-file", json!({"file_ids": ids}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let files = v["data"]["file_detail_list"].as_array().unwrap().clone();
        if files.iter().all(|f| f["status"] != "PROCESSING") {
            return files;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("files {ids:?} never left PROCESSING");
}

/// Files of `knowledge.background_bytes` or more answer `PROCESSING` at once and are read by
/// a task: then `COMPLETED` and searchable, or `FAILED` with the reason; smaller ones are
/// read during the call as before.
#[tokio::test]
async fn large_files_are_read_in_the_background() {
    let s = TestServer::with_config(|c| c.knowledge.background_bytes = 64).await;
    let kb = create(&s, "Handbook").await;
    let (st, v) = s
        .post(
            "add/knowledgebase-file",
            json!({"knowledgebase_id": kb, "file": [
                {"name": "policy.pdf", "content": b64(&fixtures::pdf(&[
                    &["The design software limit is 1000 yuan per seat."]]))},
                {"name": "broken.pdf", "content": b64(format!("%PDF-1.4 {}", "not a pdf ".repeat(20)).as_bytes())},
                {"name": "tiny.txt", "content": b64(b"The office opens at nine.")}
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let answered: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(answered, ["PROCESSING", "PROCESSING", "COMPLETED"], "{v}");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    let files = settled(&s, &ids[..2]).await;
    let by_name = |n: &str| files.iter().find(|f| f["name"] == n).unwrap().clone();
    let (pdf, broken) = (by_name("policy.pdf"), by_name("broken.pdf"));
    assert_eq!(pdf["status"], "COMPLETED", "{pdf}");
    assert_eq!(pdf["chunks"], 1, "{pdf}");
    assert_eq!(broken["status"], "FAILED", "{broken}");
    assert!(
        broken["reason"].as_str().unwrap().contains("PDF"),
        "{broken}"
    );
    let hits = search(&s, "design software limit", json!([kb])).await;
    assert!(
        hits.iter()
            .any(|h| h["memory_value"].as_str().unwrap().contains("1000 yuan")),
        "{hits:?}"
    );
    // Deleting a file read in the background takes its chunks too.
    let (st, v) = s
        .post("delete/knowledgebase-file", json!({"file_ids": [ids[0]]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        search(&s, "design software limit", json!([kb]))
            .await
            .iter()
            .all(|h| !h["memory_value"].as_str().unwrap().contains("1000 yuan"))
    );
}

/// `allow_knowledgebase_ids` on an add (sync and async) and on a chat's add: what the add
/// makes is also written into those bases, where a search of the base (by anyone of the
/// project) finds it; an unknown base is a 404 naming it with nothing stored, and the copies
/// keep none of the user's messages as sources.
#[tokio::test]
async fn an_add_allowed_into_a_knowledge_base_writes_its_memories_there() {
    let s = TestServer::new().await;
    let kb = create(&s, "Team notes").await;
    let add = |user: &str, text: &str, kbs: Value, async_mode: bool| {
        json!({"user_id": user, "conversation_id": "c", "async_mode": async_mode,
               "messages": [{"role": "user", "content": text}],
               "allow_knowledgebase_ids": kbs})
    };
    assert_error(
        &s.post(
            "add/message",
            add(
                "ana",
                "The staging server restarts at midnight.",
                json!(["kb_nope"]),
                false,
            ),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "kb_nope",
    );
    let (_, v) = s.post("get/memory", json!({"user_id": "ana"})).await;
    assert_eq!(v["data"]["total"], 0, "a refused add stores nothing: {v}");

    let (st, v) = s
        .post(
            "add/message",
            add(
                "ana",
                "The staging server restarts at midnight.",
                json!([kb]),
                false,
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            "add/message",
            add("ana", "Deploys are frozen on Fridays.", json!([kb]), true),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let task = v["data"]["task_id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        let (_, t) = s.post("get/status", json!({"task_id": task})).await;
        if t["data"]["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Another user of the project finds both through the base, and not through ana.
    for (query, text) in [
        ("when does staging restart", "midnight"),
        ("are deploys frozen", "Fridays"),
    ] {
        let (st, v) = s
            .post(
                "search/memory",
                json!({"user_id": "bo", "query": query, "knowledgebase_ids": [kb]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let hits = v["data"]["memory_detail_list"].as_array().unwrap();
        let hit = hits
            .iter()
            .find(|h| h["memory_value"].as_str().unwrap().contains(text))
            .unwrap_or_else(|| panic!("{query}: {hits:?}"));
        assert_eq!(hit["info"]["shared_from"]["user_id"], "ana", "{hit}");
        assert!(
            hit["sources"].as_array().is_none_or(|s| s.is_empty()),
            "{hit}"
        );
        let (_, mine) = s
            .post("search/memory", json!({"user_id": "bo", "query": query}))
            .await;
        assert!(
            mine["data"]["memory_detail_list"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{mine}"
        );
    }
    // A correction allowed into the base is written there too, found by another user.
    let (st, v) = s
        .post(
            "add/feedback",
            json!({"user_id": "ana", "conversation_id": "c",
                   "feedback_content": "No, the staging server restarts at one in the morning.",
                   "allow_knowledgebase_ids": [kb]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = s
        .post(
            "search/memory",
            json!({"user_id": "bo", "query": "when does staging restart", "knowledgebase_ids": [kb]}),
        )
        .await;
    let hits = v["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        hits.iter().any(|h| h["memory_value"]
            .as_str()
            .unwrap()
            .contains("one in the morning")),
        "{hits:?}"
    );
}

/// `allow_public`: what the add makes also goes into the project's public knowledge base,
/// made on first use, which any user of the project reaches by naming `kb_public` or with
/// `"all"`; another project has none of it.
#[tokio::test]
async fn an_add_allowed_public_writes_into_the_projects_public_base() {
    let s = TestServer::new().await;
    let (st, v) = s
        .post(
            "add/message",
            json!({"user_id": "ana", "conversation_id": "c", "async_mode": false,
                   "allow_public": true,
                   "messages": [{"role": "user", "content": "The cafeteria serves ramen on Tuesdays."}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for kbs in [json!(["kb_public"]), json!("all")] {
        let (_, v) = s
            .post(
                "search/memory",
                json!({"user_id": "bo", "query": "what does the cafeteria serve", "knowledgebase_ids": kbs}),
            )
            .await;
        let hits = v["data"]["memory_detail_list"].as_array().unwrap();
        assert!(
            hits.iter()
                .any(|h| h["memory_value"].as_str().unwrap().contains("ramen")),
            "{kbs}: {hits:?}"
        );
    }
    // Only ana's own search sees her memory without naming the base.
    let (_, v) = s
        .post(
            "search/memory",
            json!({"user_id": "bo", "query": "what does the cafeteria serve"}),
        )
        .await;
    assert_eq!(v["data"]["memory_detail_list"], json!([]), "{v}");
    let other = s.other_key.clone();
    assert_error(
        &s.post_as(
            &other,
            "search/memory",
            json!({"user_id": "bo", "query": "cafeteria", "knowledgebase_ids": ["kb_public"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        50120,
        "kb_public",
    );
}
