#!/usr/bin/env bash
# What to run before pushing: formatting, lints as errors, then the whole test suite
# (the same script CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/test.sh "$@"
