#!/usr/bin/env bash
# Configures and builds pgmux and its tests in build/ (ccache is used when installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake -S . -B build -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build build -j "${PGMUX_BUILD_JOBS:-2}" "$@"
