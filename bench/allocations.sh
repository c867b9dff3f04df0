#!/usr/bin/env bash
# Heap allocations per transaction in pgmux's steady state, counted by a preloaded allocator
# hook (bench/alloc_count.c: malloc and its relatives, which operator new and coroutine frames
# use too). The same pgbench workload (transaction mode, pool 10, 10 clients or BENCH_CLIENTS; -S simple,
# extended and prepared) runs a short and a long time against each binary, and the difference
# in allocations is divided by the difference in transactions, so start-up, logins and
# shutdown cancel out. Server TLS is off unless BENCH_SERVER_TLS names a mode (OpenSSL 3
# allocates per record: its buffers and a few small blocks per SSL_read/SSL_write).
#   bench/allocations.sh [BINARY ...]      (default: this checkout's build/pooler/pgmux)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(build/pooler/pgmux)
short=${BENCH_SHORT_TX:-200}
long=${BENCH_LONG_TX:-2200}
clients=${BENCH_CLIENTS:-10}

# shellcheck source=bench/common.sh
source bench/common.sh
counting_begin pgmux-bench-alloc
hook="$work/alloc_count.so"
gcc -O2 -shared -fPIC -o "$hook" bench/alloc_count.c

# allocations BINARY TX_PER_CLIENT ARGS… → heap allocations of pgmux during one pgbench run
allocations() {
  local binary=$1 tx=$2 port pid before after; shift 2
  counting_config "$work/alloc.toml"
  rm -f "$work/count"
  ALLOC_COUNT_FILE="$work/count" LD_PRELOAD="$hook" "$binary" --config "$work/alloc.toml" \
    >"$work/alloc.log" 2>&1 &
  pid=$!
  wait_ready "$port"
  sleep 0.1
  before=$(tr -d ' ' < "$work/count")
  pgbench_checked "$port" "$@" -c "$clients" -j 2 -t "$tx"
  sleep 0.1  # the hook rewrites its count every 20 ms
  after=$(tr -d ' ' < "$work/count")
  kill -INT "$pid"
  wait "$pid" || true
  echo $(( after - before ))
}

printf '| binary | workload | heap allocations per transaction |\n|---|---|---:|\n'
for binary in "${binaries[@]}"; do
  for workload in "-S:-S" "-S -M extended:-S -M extended" "-S -M prepared:-S -M prepared"; do
    name=${workload%%:*}
    read -r -a args <<< "${workload#*:}"
    a=$(allocations "$binary" "$short" "${args[@]}")
    b=$(allocations "$binary" "$long" "${args[@]}")
    printf '| %s | `%s` | %s |\n' "$binary" "$name" \
      "$(awk -v a="$a" -v b="$b" -v n=$(( (long - short) * clients )) \
        'BEGIN { v = (b - a) / n; if (v < 0 && v > -0.005) v = 0; printf "%.2f", v }')"
  done
done
