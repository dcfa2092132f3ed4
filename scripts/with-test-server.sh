#!/usr/bin/env bash
# Runs a command with SECURERESTORE_TEST_DATABASE_URL set: the given one, or a throwaway
# PostgreSQL started here and stopped (and deleted) when the command ends, also on failure.
#
#   scripts/with-test-server.sh pytest tests/python
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n ${SECURERESTORE_TEST_DATABASE_URL:-} ]]; then
  exec "$@"
fi

cargo build --locked -q -p restore-cli
cli=$PWD/target/debug/securerestore
state=$(mktemp -d "${TMPDIR:-/tmp}/securerestore-test-XXXXXX")
cleanup() {
  SECURERESTORE_STATE_DIR=$state "$cli" local stop >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

SECURERESTORE_TEST_DATABASE_URL=$(SECURERESTORE_STATE_DIR=$state "$cli" local start --fast)
export SECURERESTORE_TEST_DATABASE_URL
"$@"
