#!/usr/bin/env bash
# Builds each libFuzzer target in tests/fuzz (clang, with ASan and UBSan) and runs it for a
# bounded time from its corpus in build-fuzz/corpus/NAME (kept between runs on this machine).
#   scripts/fuzz.sh            every target, 20 s each
#   scripts/fuzz.sh 300 scram  one target for 5 minutes
# Exits non-zero when a target finds a crash; the reproducer is left in build-fuzz/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-20}
only=${2:-}
out=build-fuzz
mkdir -p "$out"
cxx=$(command -v clang++ || command -v clang++-14)
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I.)
protocol_sources=(protocol/frame_reader.cpp protocol/messages.cpp protocol/message_writer.cpp
                  protocol/scram.cpp protocol/base64.cpp protocol/md5.cpp)
for target in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$target" .cpp)
  name=${name#fuzz_}
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  sources=("${protocol_sources[@]}")
  [ "$name" = expectations ] && sources=(pooler/session/expectations.cpp)
  binary="$out/fuzz_$name"
  if [ ! -x "$binary" ] || [ -n "$(find "$target" "${sources[@]}" protocol pooler/session -newer "$binary" -print -quit)" ]; then
    echo "fuzz: building $name"
    "$cxx" "${flags[@]}" "$target" "${sources[@]}" -lcrypto -o "$binary"
  fi
  mkdir -p "$out/corpus/$name"
  echo "fuzz: running $name for ${seconds}s"
  (cd "$out" && "./fuzz_$name" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
      -print_final_stats=1 "corpus/$name" 2>&1 | grep -E "^#[0-9]+ +DONE|ERROR|SUMMARY|stat::number_of_executed_units" || true)
  if ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $name found a failing input:" "$out"/crash-* "$out"/leak-* "$out"/timeout-* 2>/dev/null
    exit 1
  fi
done
echo "fuzz: no failures"
