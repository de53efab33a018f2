//! memos-core integration tests that need the real embedding models (fetched by
//! `scripts/fetch-models.sh` into `models/`, or `$MEMOS_MODELS_DIR`).

#![allow(unreachable_pub, missing_docs)]

mod models;
