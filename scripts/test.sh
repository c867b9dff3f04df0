#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then runs the unit tests and the
# integration tests (which start a real PostgreSQL 15 primary + streaming replica themselves).
#   scripts/test.sh                 everything
#   scripts/test.sh -L unit         only one label (any ctest arguments are passed on)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 1200 "$@"
