//! HTTP tests of the MemOS API through the router (no socket): every endpoint, auth,
//! project isolation and bad input, over the real embedded store in a temp directory.

mod common;
mod api;
mod bad_input;
