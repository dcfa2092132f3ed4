#!/usr/bin/env bash
# Tests the Python SDK: builds the abi3 wheel, installs it in target/py-venv, checks the Python
# code (the SDK, its tests, the benchmark) with ruff and runs tests/python against a throwaway
# PostgreSQL (or the server named by SECURERESTORE_TEST_DATABASE_URL). Needs Rust, Python 3.9+
# with pip and the server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

venv=target/py-venv
python=${PYTHON:-python3}
if [[ ! -x $venv/bin/python ]]; then
  step "virtual environment $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "maturin>=1.5,<2" pytest ruff mypy

step "wheel"
wheels=target/py-wheels
rm -rf "$wheels"
"$venv/bin/maturin" build --locked -q -m restore-py/Cargo.toml -o "$wheels"
wheel=$(ls "$wheels"/secureai_restore_sdk-*.whl)
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"

step "ruff"
ruff_config=restore-py/pyproject.toml
"$venv/bin/ruff" check --config "$ruff_config" restore-py/python tests/python bench
"$venv/bin/ruff" format --check --config "$ruff_config" restore-py/python tests/python bench

step "Python tests"
# `secureai` is imported from the installed wheel: the source tree is not on sys.path.
status=0
SECURERESTORE_PY_WHEEL=$PWD/$wheel scripts/with-test-server.sh \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir tests/python tests/python \
  || status=$?
if [[ $status -eq 5 ]]; then
  echo "no Python tests were collected" >&2
fi
exit "$status"
