#!/usr/bin/env bash
# Run the SDK compatibility tests against $BUILD/waymark (BUILD is relative to the
# repository root, default "build"). Installs the npm packages first if they are
# missing or stale, then prints node's test summary and exits non-zero on failure.
#   tests/compat/run.sh                       all files
#   tests/compat/run.sh sensors-js.test.mjs   one file (names relative to tests/compat)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export BUILD=${BUILD:-build}

stamp="$here/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$here/package-lock.json" -nt "$stamp" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [[ ! -x "$root/$BUILD/waymark" && ! -x "$BUILD/waymark" ]]; then
  echo "compat: $BUILD/waymark not found; build it first (make)" >&2
  exit 1
fi

cd "$here"
if (($# == 0)); then
  set -- ./*.test.mjs
fi
exec node --test --test-reporter=spec "$@"
