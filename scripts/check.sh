#!/usr/bin/env bash
# What to run before pushing: the same script CI runs (formatting, lints as errors, then
# the whole test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./.ci/run "$@"
