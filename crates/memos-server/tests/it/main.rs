//! HTTP tests of the MemOS API through the router (no socket): every endpoint, auth,
//! project isolation and bad input, over the real embedded store in a temp directory.

#![allow(unreachable_pub, missing_docs)] // test helpers are shared between test modules only

/// The store [`common::TestServer`] runs on; `it_postgres` runs the same tests on PostgreSQL.
pub const BACKEND: &str = "embedded";

mod api;
mod bad_input;
mod chat;
mod common;
mod current_fact;
mod dashboard_api;
mod delete_modes;
mod golden;
mod http_fuzz;
mod issue_13;
mod knowledge;
mod openapi;
mod ops;
mod portability;
mod profiles;
mod sdk_fields;
