//! The HTTP tests of `it`, every one, over the PostgreSQL store: each test server gets a
//! fresh schema on the server `MEMOS_PG_URL` names (`scripts/test.sh` and CI start one).

#![allow(unreachable_pub, missing_docs)] // test helpers are shared between test modules only

/// The store [`common::TestServer`] runs on.
pub const BACKEND: &str = "postgres";

#[path = "it/api.rs"]
mod api;
#[path = "it/bad_input.rs"]
mod bad_input;
#[path = "it/chat.rs"]
mod chat;
#[path = "it/common.rs"]
mod common;
#[path = "it/current_fact.rs"]
mod current_fact;
#[path = "it/dashboard_api.rs"]
mod dashboard_api;
#[path = "it/delete_modes.rs"]
mod delete_modes;
#[path = "it/golden.rs"]
mod golden;
#[path = "it/http_fuzz.rs"]
mod http_fuzz;
#[path = "it/issue_13.rs"]
mod issue_13;
#[path = "it/knowledge.rs"]
mod knowledge;
#[path = "it/ops.rs"]
mod ops;
#[path = "it/portability.rs"]
mod portability;
#[path = "it/profiles.rs"]
mod profiles;
#[path = "it/sdk_fields.rs"]
mod sdk_fields;
