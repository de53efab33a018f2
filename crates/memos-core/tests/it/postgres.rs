//! The PostgreSQL store against a real server: the whole conformance suite, each test in a
//! schema of its own. The server comes from `scripts/start-postgres.sh` (CI starts it and
//! sets `MEMOS_PG_URL`); without it these tests skip locally and fail in CI.

use std::sync::Arc;

use memos_core::store::{MemoryStore, PostgresStore};

/// A store in a fresh schema, or `None` when no server is configured (outside CI).
pub async fn pg_store() -> Option<(Arc<dyn MemoryStore>, ())> {
    let Some(url) = std::env::var("MEMOS_PG_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start PostgreSQL (scripts/start-postgres.sh) and set MEMOS_PG_URL"
        );
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers at MEMOS_PG_URL");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3D{schema}%2Cpublic");
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
