//! Issue 18, "the current fact first": after "I live in Beijing" (January) and "I just moved
//! from Beijing to Shanghai" (October), the verbatim January turn still matches "where does
//! the user live?" best, but what replaced it comes first; a search as of a time before the
//! move sees the world as it was. English and Chinese; `it_postgres` runs it on PostgreSQL.

use serde_json::{Value, json};

use crate::common::TestServer;

async fn moved(s: &TestServer, user: &str, before: &str, after: &str) {
    s.add(
        user,
        "january",
        json!([{"role": "user", "content": before, "chat_time": "2025-01-01T10:00:00Z"}]),
    )
    .await;
    s.add(
        user,
        "october",
        json!([{"role": "user", "content": after, "chat_time": "2025-10-01T10:00:00Z"}]),
    )
    .await;
}

fn position(hits: &[Value], needle: &str) -> usize {
    hits.iter()
        .position(|h| h["memory_value"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("{needle} not found in {hits:#?}"))
}

#[tokio::test]
async fn a_superseded_fact_never_outranks_what_replaced_it() {
    let s = TestServer::new().await;
    for (user, before, after, query, old_turn, new_fact) in [
        (
            "en",
            "I live in Beijing.",
            "I just moved from Beijing to Shanghai.",
            "Where does the user live?",
            "User: I live in Beijing.",
            "The user just moved from Beijing to Shanghai.",
        ),
        (
            "zh",
            "我住在北京。",
            "我刚从北京搬到了上海。",
            "用户住在哪里？",
            "用户：我住在北京。",
            "用户刚从北京搬到了上海。",
        ),
    ] {
        moved(&s, user, before, after).await;
        let hits = s
            .search(json!({"user_id": user, "query": query, "explain": true}))
            .await;
        let (turn, fact) = (position(&hits, old_turn), position(&hits, new_fact));
        assert!(fact < turn, "{user}: the current fact first: {hits:#?}");
        assert_eq!(turn, fact + 1, "{user}: right above the old turn");
        let (turn, fact) = (&hits[turn], &hits[fact]);
        assert_eq!(turn["explain"]["outdated_by"], fact["id"], "{turn}");
        assert_eq!(fact["explain"]["replaces"], turn["id"], "{fact}");
        assert!(
            fact["relativity"].as_f64() >= turn["relativity"].as_f64(),
            "{hits:#?}"
        );
        // The turn is a record of what was said: still current, its history says why it
        // ranks lower.
        assert_eq!(turn["status"], "activated");
        let (_, h) = s
            .post(
                "get/history",
                json!({"user_id": user, "memory_id": turn["id"]}),
            )
            .await;
        let change = &h["data"]["history"][0];
        assert_eq!(
            (&change["kind"], &change["related_id"]),
            (&json!("outdated"), &fact["id"]),
            "{h}"
        );

        // As of June the move had not happened: the old fact and its turn, nothing outdated.
        let then = s
            .search(json!({"user_id": user, "query": query, "explain": true,
                           "query_time": "2025-06-01T00:00:00Z"}))
            .await;
        assert!(
            then.iter()
                .all(|h| h["explain"].get("outdated_by").is_none()
                    && !h["memory_value"].as_str().unwrap().contains(new_fact)),
            "{user}: {then:#?}"
        );
        position(&then, old_turn);
    }
}
