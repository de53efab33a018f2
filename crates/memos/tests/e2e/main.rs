//! End-to-end tests: the real `memos` binary on a real socket, driven over HTTP, by the
//! seed's Python client, and killed with SIGKILL.

#![allow(unreachable_pub, missing_docs)] // test helpers are shared between test modules only

mod bench;
mod chaos;
mod common;
mod contract;
mod crash;
mod dashboard;
mod diskfull;
mod keys;
mod llm;
mod logs;
mod mcp;
mod postgres;
mod sdk;
mod seed;
mod transfer;
