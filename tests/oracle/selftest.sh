#!/usr/bin/env bash
# Self-test of the analytics oracle (hand-computed answers for every kind).
# Installs the oracle's npm packages first when they are missing (scripts/bootstrap).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ ! -d "$here/node_modules/@duckdb/node-api" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec node "$here/selftest.mjs"
