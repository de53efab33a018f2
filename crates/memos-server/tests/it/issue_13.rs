//! Issue 13 regressions: inputs that used to panic the server, and a deleted memory that
//! came back when an edit raced its delete, on one server or across two.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::TestServer;

const POISON: [&str; 4] = [
    "I adopted a puppy 100000000 days ago.",
    "I moved 99999999999999 weeks ago.",
    "我100000000天前搬家了。",
    "We met 9223372036854775807 years ago.",
];

#[tokio::test]
async fn issue_13_huge_dates_answer_in_sync_adds_async_adds_and_searches() {
    let s = TestServer::new().await;
    for text in POISON {
        s.add("u", "c", json!([{"role": "user", "content": text}]))
            .await;
        let (st, v) = s
            .post(
                "add/message",
                json!({"user_id": "u", "conversation_id": "c2",
                       "messages": [{"role": "user", "content": text}]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let task = v["data"]["task_id"].as_str().unwrap().to_string();
        assert_eq!(s.wait_task(&task).await, "completed", "{text}");
        s.search(json!({"user_id": "u", "query": text})).await;
    }
    // The worker still takes work after all of them.
    let (_, v) = s
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c3",
                   "messages": [{"role": "user", "content": "I keep bees."}]}),
        )
        .await;
    let task = v["data"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(s.wait_task(&task).await, "completed");
}

/// An edit racing a delete of the same memory: whichever lands first, a delete that
/// answered 200 leaves the memory gone, never `activated` again. Fixed rounds, both delete
/// kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_edit_racing_a_delete_never_resurrects_the_memory() {
    let s = TestServer::new().await;
    for round in 0..40 {
        let hard = round % 2 == 1;
        let ids = s
            .add(
                "u",
                "c",
                json!([{"role": "user", "content": format!("I own {round} red bicycles.")}]),
            )
            .await;
        let id = ids[0].clone();
        let update = s.post(
            "update/memory",
            json!({"memory_id": id, "memory_value": format!("I own {round} blue bicycles.")}),
        );
        let delete = s.post("delete/memory", json!({"memory_ids": [id], "hard": hard}));
        let ((_, _), (ds, dv)) = tokio::join!(update, delete);
        assert_eq!(ds, StatusCode::OK, "{dv}");
        let (_, got) = s.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
        assert_ne!(
            got["data"]["status"], "activated",
            "round {round} (hard: {hard}): the deleted memory came back: {got}"
        );
        let hits = s
            .search(json!({"user_id": "u", "query": format!("{round} bicycles")}))
            .await;
        assert!(
            hits.iter().all(|h| h["id"] != id.as_str()),
            "round {round}: a deleted memory is searchable"
        );
    }
}

/// An erase racing a sync add that restates a stored fact: the add's merge used to write
/// the erased fact back under its old id. Whichever lands first, the old fact stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_erase_racing_a_restating_add_stays_final() {
    let s = TestServer::new().await;
    for round in 0..30 {
        let user = format!("u{round}");
        let fact = "I have a peanut allergy.";
        let old = s
            .add(&user, "c", json!([{"role": "user", "content": fact}]))
            .await;
        let add = s.post(
            "add/message",
            json!({"user_id": user, "conversation_id": "c2", "async_mode": false,
                   "messages": [{"role": "user", "content": fact}]}),
        );
        let erase = s.post("delete/memory", json!({"user_id": user}));
        let ((ast, av), (est, ev)) = tokio::join!(add, erase);
        assert_eq!(est, StatusCode::OK, "{ev}");
        assert!(ast == StatusCode::OK || ast == StatusCode::CONFLICT, "{av}");
        for id in &old {
            let (_, got) = s.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
            assert_eq!(
                got["code"], 40001,
                "round {round}: memory {id} came back after the erase: {got}"
            );
        }
    }
}

/// An erase while an acknowledged async add is still being extracted: the task's
/// memories never appear once the erase has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_an_erase_racing_an_async_task_stays_final() {
    let s = TestServer::new().await;
    for round in 0..30 {
        let user = format!("u{round}");
        s.add(
            &user,
            "c",
            json!([{"role": "user", "content": "I live in Oslo."}]),
        )
        .await;
        let (_, v) = s
            .post(
                "add/message",
                json!({"user_id": user, "conversation_id": "c",
                       "messages": [{"role": "user", "content": "I work as a nurse."}]}),
            )
            .await;
        let task = v["data"]["task_id"].as_str().unwrap().to_string();
        let (est, ev) = s.post("delete/memory", json!({"user_id": user})).await;
        assert_eq!(est, StatusCode::OK, "{ev}");
        // Until the task has ended (or is gone with the user), then look.
        s.wait_task(&task).await;
        let (_, got) = s
            .post("get/memory", json!({"user_id": user, "size": 50}))
            .await;
        assert_eq!(
            got["data"]["total"], 0,
            "round {round}: memories came back after the erase: {got}"
        );
    }
}

/// A NUL byte anywhere in a string is a 40000 naming the field, on every store (PostgreSQL
/// cannot store one and used to answer 500), and nothing is stored.
#[tokio::test]
async fn issue_13_a_nul_byte_is_refused_naming_the_field() {
    let s = TestServer::new().await;
    let nul = "a\u{0}b";
    let cases = [
        (
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": nul}]}),
            "messages[0].content",
        ),
        (
            "add/message",
            json!({"user_id": nul, "conversation_id": "c", "messages": [{"role": "user", "content": "hi"}]}),
            "user_id",
        ),
        (
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "messages": [{"role": "user", "content": "hi"}], "info": {nul: 1}}),
            "info",
        ),
        (
            "add/feedback",
            json!({"user_id": "u", "conversation_id": "c", "feedback_content": nul}),
            "feedback_content",
        ),
        (
            "update/memory",
            json!({"memory_id": "m", "memory_value": nul}),
            "memory_value",
        ),
        (
            "update/memory",
            json!({"memory_id": nul, "memory_key": "k"}),
            "memory_id",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": nul}),
            "query",
        ),
        (
            "search/memory",
            json!({"user_id": "u", "query": "x", "filter": {"scene": nul}}),
            "filter.scene",
        ),
        (
            "delete/memory",
            json!({"memory_ids": [nul]}),
            "memory_ids[0]",
        ),
    ];
    for (path, body, field) in cases {
        let got = s.post(path, body.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{body}: {:?}", got.1);
        assert_eq!(got.1["code"], 40000, "{body}");
        let msg = got.1["message"].as_str().unwrap();
        assert!(msg.contains(field), "`{msg}` should name {field}");
    }
    let (_, v) = s.post("get/memory", json!({"user_id": "u"})).await;
    assert_eq!(v["data"]["total"], 0);
    let (st, v) = s
        .raw(
            "get/memory",
            Some(&format!("Token {}", s.key)),
            r#"{"user_id": "u", "page": 9223372036854775808}"#,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], 40000);
    assert!(v["message"].as_str().unwrap().contains("page"), "{v}");
}

/// Every error answer is in the envelope: a wrong method, a path that does not decode, a
/// body that is not JSON; an echoed id is cut short.
#[tokio::test]
async fn issue_13_every_error_is_in_the_envelope() {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let s = TestServer::new().await;
    let send = |req: Request<Body>| {
        let app = s.app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    let auth = format!("Token {}", s.key);
    let (st, v) = send(
        Request::get("/api/openmem/v1/add/message")
            .header("authorization", &auth)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["code"], 40000, "{v}");
    let (st, v) = send(
        Request::get("/api/openmem/v1/get/memory/%ff")
            .header("authorization", &auth)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(st.is_client_error(), "{st}");
    assert!(v["code"].is_number() && v["message"].is_string(), "{v}");
    let (st, v) = send(
        Request::post("/api/openmem/v1/search/memory")
            .header("authorization", &auth)
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"user_id": "u", "query": "x"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().contains("Content-Type"),
        "{v}"
    );
    let long = "x".repeat(20_000);
    let (st, v) = send(
        Request::get(format!("/api/openmem/v1/get/memory/{long}"))
            .header("authorization", &auth)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(st.is_client_error(), "{st} {v}");
    assert!(
        v["message"].as_str().unwrap().chars().count() <= 301,
        "cut short"
    );
}

/// Issue 13: a burst beyond a project's cap answers 429 with MemOS's rate-limit code at
/// once, stores nothing for the refused requests, and the rest succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_burst_beyond_the_cap_is_refused_quickly_with_40300() {
    let s = TestServer::with_config(|c| c.server.max_concurrent_per_project = 1).await;
    let adds = (0..16).map(|i| {
        s.post(
            "add/message",
            json!({"user_id": "u", "conversation_id": format!("c{i}"), "async_mode": false,
                   "messages": [{"role": "user", "content": format!("Fact number {i}: I keep {i} bees.")}]}),
        )
    });
    let answers = futures_join_all(adds).await;
    let mut ok = 0;
    for (st, v) in &answers {
        match st.as_u16() {
            200 => ok += 1,
            429 => assert_eq!(v["code"], 40300, "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1);
    let (_, v) = s
        .post("get/memory", json!({"user_id": "u", "size": 50}))
        .await;
    let stored: std::collections::HashSet<String> = v["data"]["memory_detail_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["conversation_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored.len(), ok, "exactly the accepted adds are stored");
}

/// Polls every future to completion, concurrently (no extra dependency for a join_all).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

/// Issue 13 across servers (PostgreSQL): an edit, a restating add and an async task on one
/// server racing a delete or an erase on another. The check that a write still rests on
/// what it read runs inside the database transaction, after the revision lock every writer
/// takes, so the other server's delete is seen: what was deleted or erased stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_deletes_and_erases_are_final_across_servers() {
    if crate::BACKEND != "postgres" {
        return; // one process owns an embedded store
    }
    let a = TestServer::new().await;
    let b = a.twin().await;
    for round in 0..20 {
        // An edit on A against a hard delete on B.
        let id = a
            .add(
                "u",
                "c",
                json!([{"role": "user", "content": format!("I own {round} red kayaks.")}]),
            )
            .await[0]
            .clone();
        let update = a.post(
            "update/memory",
            json!({"memory_id": id, "memory_value": format!("I own {round} blue kayaks.")}),
        );
        let delete = b.post("delete/memory", json!({"memory_ids": [id], "hard": true}));
        let (_, (ds, dv)) = tokio::join!(update, delete);
        assert_eq!(ds, StatusCode::OK, "{dv}");
        let (_, got) = a.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
        assert_eq!(
            got["code"], 40001,
            "round {round}: the deleted memory came back: {got}"
        );

        // A restating add and an async task on A against an erase of the user on B.
        let user = format!("v{round}");
        let old = a
            .add(
                &user,
                "c",
                json!([{"role": "user", "content": "I have a peanut allergy."}]),
            )
            .await;
        let (_, v) = a
            .post(
                "add/message",
                json!({"user_id": user, "conversation_id": "c",
                       "messages": [{"role": "user", "content": "I work as a nurse."}]}),
            )
            .await;
        let task = v["data"]["task_id"].as_str().unwrap().to_string();
        let restate = a.post(
            "add/message",
            json!({"user_id": user, "conversation_id": "c2", "async_mode": false,
                   "messages": [{"role": "user", "content": "I have a peanut allergy."}]}),
        );
        let erase = b.post("delete/memory", json!({"user_id": user}));
        let ((rs, rv), (es, ev)) = tokio::join!(restate, erase);
        assert_eq!(es, StatusCode::OK, "{ev}");
        assert!(rs == StatusCode::OK || rs == StatusCode::CONFLICT, "{rv}");
        // Ended, or gone with its user.
        a.wait_task(&task).await;
        for id in &old {
            let (_, got) = b.get(&format!("/api/openmem/v1/get/memory/{id}")).await;
            assert_eq!(
                got["code"], 40001,
                "round {round}: {id} came back after the erase: {got}"
            );
        }
        // Whatever remains came from the restating add, if it landed after the erase.
        let (_, got) = b
            .post("get/memory", json!({"user_id": user, "size": 50}))
            .await;
        for m in got["data"]["memory_detail_list"].as_array().unwrap() {
            assert!(
                !m["memory_value"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("nurse"),
                "round {round}: the erased task's memory came back: {m}"
            );
        }
    }
}
