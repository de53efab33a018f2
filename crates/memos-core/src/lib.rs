//! memos-core: the domain of the memos memory service, free of HTTP and CLI types.
//!
//! # Layout
//! - [`model`]: memories, messages, tasks, keys and the [`model::Scope`] that partitions them.
//! - [`service`]: [`MemoryService`], the one facade the server and the CLI call.
//! - [`store`]: the [`store::MemoryStore`] trait, the SQLite and in-memory backends, and the
//!   conformance suite every backend passes.
//! - [`search`]: retrievers (BM25 over tantivy) and rank fusion.
//! - [`ingest`]: turning chat messages into memory items.
//! - [`text`]: the English + Chinese tokenizer shared by indexing and querying.
//! - [`filter`]: the MemOS filter language.
//! - [`auth`], [`config`], [`time`], [`error`].

#![warn(missing_docs)]

pub mod auth;
pub mod chat;
pub mod config;
pub mod dates;
pub mod embed;
pub mod error;
pub mod filter;
pub mod ingest;
pub mod knowledge;
pub mod llm_usage;
pub mod model;
pub mod search;
pub mod service;
pub mod store;
pub mod text;
pub mod time;

pub use config::Config;
pub use error::{Error, Result};
pub use service::MemoryService;
