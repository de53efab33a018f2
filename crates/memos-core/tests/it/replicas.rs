//! Searches on PostgreSQL streaming replicas (issue 17, `store.replica_urls`): writes go to
//! the primary, searches to a replica that has replayed the primary's latest write, so a
//! sync add is searchable on the very next call; a "replica" that is not one, or one that
//! lags, is passed over for the primary. The replica comes from
//! `scripts/start-postgres-replica.sh` (CI starts it and sets `MEMOS_PG_REPLICA_URL`).

use std::sync::Arc;

use memos_core::config::StoreBackend;
use memos_core::service::{SearchInput, SearchMode};
use memos_core::store::tests_support;
use memos_core::{Config, MemoryService};

/// The primary's and the replica's base URLs, when both are configured.
fn servers() -> Option<(String, String)> {
    let primary = std::env::var("MEMOS_PG_URL").ok().filter(|u| !u.is_empty());
    let replica = std::env::var("MEMOS_PG_REPLICA_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match (primary, replica) {
        (Some(p), Some(r)) => Some((p, r)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must start a replica (scripts/start-postgres-replica.sh) and set MEMOS_PG_REPLICA_URL"
            );
            None
        }
    }
}

/// A service on a fresh schema of the primary, searching through `replica` (a base URL).
async fn service(replica: impl Fn(&str) -> String, wait_ms: u64) -> Option<Arc<MemoryService>> {
    let url = tests_support::postgres_schema_url().await?;
    let mut cfg = Config::default();
    cfg.store.backend = StoreBackend::Postgres;
    cfg.store.replica_urls = vec![replica(&url)];
    cfg.store.url = url;
    cfg.store.replica_wait_ms = wait_ms;
    cfg.store.max_connections = 4;
    match crate::models::models() {
        Some(dir) => {
            cfg.embed.model_dir = dir.join("multilingual-e5-small-q4");
            cfg.embed.required = true;
            // Vectors are written with the add, so the dense search reads them too.
            cfg.embed.inline = true;
        }
        None => cfg.embed.model_dir = Default::default(),
    }
    Some(MemoryService::open(cfg).await.unwrap())
}

async fn add_and_find(svc: &MemoryService, i: usize) {
    let fact = format!("My locker number at the gym is {i}{i}7, next to the sauna {i}.");
    svc.add(
        "p",
        crate::add_input("u", vec![crate::user_message(&fact, None)]),
    )
    .await
    .unwrap();
    // The very next call: the write must be seen, by both retrievers.
    for mode in [SearchMode::Lexical, SearchMode::Dense] {
        if mode == SearchMode::Dense && svc.embedder().is_none() {
            continue;
        }
        let hits = svc
            .search(
                "p",
                SearchInput {
                    user_id: "u".into(),
                    query: format!("locker number {i}{i}7 sauna {i}"),
                    conversation_id: None,
                    limit: Some(3),
                    filter: None,
                    query_time: None,
                    mode,
                    since: None,
                },
            )
            .await
            .unwrap();
        assert!(
            hits.iter()
                .any(|h| h.memory.value.contains(&format!("{i}{i}7"))),
            "{mode:?} search {i} missed the add just made: {hits:?}"
        );
    }
}

#[tokio::test]
async fn searches_read_a_replica_and_still_see_the_add_just_made() {
    let Some((primary, replica)) = servers() else {
        return;
    };
    let Some(svc) = service(|url| url.replacen(&primary, &replica, 1), 2_000).await else {
        return;
    };
    for i in 0..6 {
        add_and_find(&svc, i).await;
    }
    let pool = svc.store_pool().unwrap();
    eprintln!("{pool:?}");
    assert!(pool.replica_searches >= 6, "{pool:?}");
    assert!(
        pool.replica_fallbacks <= pool.replica_searches / 2,
        "the replica keeps up on loopback: {pool:?}"
    );
}

#[tokio::test]
async fn a_replica_url_that_is_no_replica_falls_back_to_the_primary() {
    if servers().is_none() {
        return;
    }
    // The primary itself named as a replica (a mistake a deployment can make): never in
    // recovery, so never trusted; every search reads the primary, and is right.
    let Some(svc) = service(str::to_string, 5).await else {
        return;
    };
    for i in 0..2 {
        add_and_find(&svc, i).await;
    }
    let pool = svc.store_pool().unwrap();
    assert_eq!(pool.replica_searches, 0, "{pool:?}");
    assert!(pool.replica_fallbacks >= 2, "{pool:?}");
}

#[tokio::test]
async fn a_replica_that_is_down_costs_a_search_no_more_than_the_wait() {
    if servers().is_none() {
        return;
    }
    // Nothing listens on port 9 of loopback: connections are refused or hang; either way a
    // search reads the primary within the wait.
    let dead = |url: &str| {
        let (_, rest) = url.split_once('?').unwrap_or((url, ""));
        format!("postgres://postgres@127.0.0.1:9/postgres?connect_timeout=10&{rest}")
    };
    let Some(svc) = service(dead, 50).await else {
        return;
    };
    let started = std::time::Instant::now();
    add_and_find(&svc, 0).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(svc.store_pool().unwrap().replica_fallbacks >= 1);
}
