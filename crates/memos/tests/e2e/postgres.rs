//! `memos serve --store postgres`: the real binary on the database that
//! `scripts/start-postgres.sh` started (`MEMOS_PG_URL`), over HTTP; its data outlives the
//! server, and a server started later on a fresh data directory rebuilds its index from it.

use serde_json::json;

use crate::common::Server;

/// The database URL in a schema of its own, or `None` outside CI without a server.
async fn pg_url() -> Option<String> {
    let Some(url) = std::env::var("MEMOS_PG_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start PostgreSQL (scripts/start-postgres.sh) and set MEMOS_PG_URL"
        );
        return None;
    };
    let schema = format!("e2e_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{sep}options=-c%20search_path%3D{schema}%2Cpublic"
    ))
}

#[tokio::test]
async fn the_server_runs_on_postgres_and_its_data_outlives_it() {
    let Some(url) = pg_url().await else { return };
    let first_dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        first_dir.path(),
        "pg-e2e-secret",
        &["--store", "postgres", "--store-url", &url],
    );
    let (status, v) = server
        .post(
            "add/message",
            json!({"user_id": "u", "conversation_id": "c", "async_mode": false,
                   "messages": [{"role": "user", "content": "I keep bees on my roof."}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "bees roof"}),
        )
        .await;
    assert!(
        !v["data"]["memory_detail_list"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{v}"
    );
    drop(server);
    // Another server, another data directory: the memories come from the database.
    let second_dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        second_dir.path(),
        "pg-e2e-secret",
        &["--store", "postgres", "--store-url", &url],
    );
    let (_, v) = server
        .post(
            "search/memory",
            json!({"user_id": "u", "query": "bees roof"}),
        )
        .await;
    let list = v["data"]["memory_detail_list"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|m| m["memory_value"].as_str().unwrap().contains("bees")),
        "{v}"
    );
}
