//! The PostgreSQL store against a real server: the whole conformance suite, each test in a
//! schema of its own. The server comes from `scripts/start-postgres.sh` (CI starts it and
//! sets `MEMOS_PG_URL`); without it these tests skip locally and fail in CI.

use std::sync::Arc;

use memos_core::store::{MemoryStore, PostgresStore, tests_support};

/// A store in a fresh schema, or `None` when no server is configured (outside CI).
pub async fn pg_store() -> Option<(Arc<dyn MemoryStore>, ())> {
    let url = tests_support::postgres_schema_url().await?;
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    Some((Arc::new(store), ()))
}

mod conformance {
    use super::pg_store;

    memos_core::store_conformance!(match pg_store().await {
        Some(s) => s,
        None => return,
    });
}
