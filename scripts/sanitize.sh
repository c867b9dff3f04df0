#!/usr/bin/env bash
# Builds pgmux and its unit tests with sanitizers, runs the unit tests, then runs integration
# tests against the sanitized pgmux (the test harness is the regular build, given as the third
# argument). Fails when a sanitizer reports anything, in pgmux or in the unit tests, or when
# a test fails.
#   scripts/sanitize.sh address,undefined "" build/tests/integration/pgmux_integration_tests
#   scripts/sanitize.sh thread "*pgbench*" build/tests/integration/pgmux_integration_tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kind=${1:-address,undefined}
filter=${2:-}
harness=${3:-build/tests/integration/pgmux_integration_tests}
case "$kind" in
  thread) dir=build-tsan ;;
  *) dir=build-asan ;;
esac
# -O1 and line tables only: the reports keep their file:line frames, and a cold build of the
# Asio-heavy sources takes much less time than with -O2 -g.
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
  -DPGMUX_SANITIZE="$kind" >/dev/null
# The unit tests are single-threaded: they run under ASan/UBSan only.
targets=(pgmux)
[ "$kind" != thread ] && targets+=(pgmux_unit_tests)
cmake --build "$dir" -j "${PGMUX_BUILD_JOBS:-2}" --target "${targets[@]}" >/dev/null
reports=$(mktemp -d /tmp/pgmux-sanitize.XXXXXX)
# Reports go to files, one per process, so that none is lost in a log nobody reads.
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=0:second_deadlock_stack=1"
if [ "$kind" != thread ]; then
  echo "sanitize ($kind): unit tests"
  "$dir/tests/unit/pgmux_unit_tests" --minimal
fi
echo "sanitize ($kind): integration tests ${filter:-(all)} against $dir/pooler/pgmux"
# Bounds on resident memory measure the allocator; under a sanitizer they measure its shadow
# memory and quarantine instead, so those tests run only in the regular build.
args=(--minimal "--test-case-exclude=*RSS*")
[ -n "$filter" ] && args+=("--test-case=$filter")
status=0
PGMUX_TEST_BINARY="$root/$dir/pooler/pgmux" "$harness" "${args[@]}" 2>&1 | tee "$reports.out" ||
  status=${PIPESTATUS[0]}
# The harness's output is long; a CI log keeps only its ends, so name the failures last.
if [ "$status" -ne 0 ]; then
  echo "sanitize ($kind): failed checks:"
  grep -E '^(TEST CASE:|.*: ERROR:|  values:)' "$reports.out" | head -40 || true
fi
rm -f "$reports.out"
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitize ($kind): reports in $reports:"
  head -c 20000 "$reports"/*
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize ($kind): integration tests failed (exit $status)"
  exit "$status"
fi
rm -rf "$reports"
echo "sanitize ($kind): no reports"
