#!/usr/bin/env bash
# System calls per transaction, by call, of pgmux binaries beside PgBouncer 1.25.2 (built by
# ../shared/anchors/build-pgbouncer.sh): `strace -c -f` attached to the pooler during a short
# and a long pgbench run (transaction mode, pool 10, BENCH_CLIENTS clients, default 10), and the difference in calls
# divided by the difference in transactions, so logins and start-up cancel out.
#   bench/syscalls.sh [BINARY ...]      (default: this checkout's build/pooler/pgmux)
# BENCH_PGBENCH_ARGS (default "-S") picks the workload, e.g. "-S -M prepared".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(build/pooler/pgmux)
short=${BENCH_SHORT_TX:-200}
long=${BENCH_LONG_TX:-2200}
clients=${BENCH_CLIENTS:-10}
read -r -a workload <<< "${BENCH_PGBENCH_ARGS:--S}"

# shellcheck source=bench/common.sh
source bench/common.sh
counting_begin pgmux-bench-syscalls strace
bouncer=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)

# traced PORT PID TX → "call count" lines of one traced run of TX transactions per client
traced() {
  local port=$1 pid=$2 tx=$3 out="$work/strace.out"
  pgbench_checked "$port" -c "$clients" -j 2 -t 5 "${workload[@]}"  # logins happen untraced
  rm -f "$out"
  strace -c -f -o "$out" -p "$pid" 2>/dev/null &
  local tracer=$!
  sleep 0.5  # attached before the first transaction
  pgbench_checked "$port" -c "$clients" -j 2 -t "$tx" "${workload[@]}"
  kill -INT "$tracer"
  wait "$tracer" || true
  # Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk '$1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {print $NF, $4}' "$out"
}

# per_tx NAME PORT PID → one table row: calls per transaction in all and by call
per_tx() {
  local name=$1 port=$2 pid=$3
  traced "$port" "$pid" "$short" > "$work/a"
  traced "$port" "$pid" "$long" > "$work/b"
  awk -v name="$name" -v tx=$(((long - short) * clients)) '
    NR == FNR { a[$1] += $2; next } { b[$1] += $2 }
    END {
      for (k in b) { d = (b[k] - (k in a ? a[k] : 0)) / tx; if (d >= 0.01) { all += d; by = by sprintf(" %s %.2f,", k, d) } }
      sub(/,$/, "", by); printf "| %s | %.2f |%s |\n", name, all, by
    }' "$work/a" "$work/b"
}

printf '| pooler (`%s`, %d clients) | syscalls per transaction | by call |\n|---|---:|---|\n' \
  "${workload[*]}" "$clients"
for binary in "${binaries[@]}"; do
  pgmux_bin=$binary start_pgmux sys transaction 10
  wait_ready "$pgmux_port"
  per_tx "$binary" "$pgmux_port" "$pgmux_pid"
  kill -INT "$pgmux_pid"
  wait "$pgmux_pid" || true
done
start_bouncer pgb125 "$bouncer" transaction 10
wait_ready "$bouncer_port"
per_tx "pgbouncer-1.25.2" "$bouncer_port" "$bouncer_pid"
