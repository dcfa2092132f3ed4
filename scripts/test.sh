#!/usr/bin/env bash
# Runs every test of the project. Tests that need PostgreSQL start a throwaway cluster of their
# own unless SECURERESTORE_TEST_DATABASE_URL names one; nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests"
cargo test --workspace --locked 2>&1 | tee target/test-rust.log

step "C interface"
bash scripts/test-c.sh

step "Python SDK"
bash scripts/test-python.sh
