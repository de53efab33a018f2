//! memos-core integration tests: the real embedding models (fetched by
//! `scripts/fetch-models.sh` into `models/`, or `$MEMOS_MODELS_DIR`), and the LLM path
//! against a scripted OpenAI-compatible server on a real socket.

#![allow(unreachable_pub, missing_docs)]

mod fuzz;
mod llm;
mod models;
mod postgres;
mod props;
mod replicas;
