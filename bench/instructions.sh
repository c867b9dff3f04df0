#!/usr/bin/env bash
# User-space instructions per transaction of pgmux binaries and of PgBouncer 1.25.2 (built by
# ../shared/anchors/build-pgbouncer.sh), counted by valgrind (callgrind):
# the same pgbench workload (transaction mode, pool 10, 10 clients, -S simple and -S -M
# prepared) runs a short and a long time against each binary, and the difference in
# instructions is divided by the difference in transactions, so start-up and login costs
# cancel out. Deterministic where CPU time on a shared 2-core machine is not.
#   bench/instructions.sh [BINARY ...]      (default: this checkout's build/pooler/pgmux)
# Server TLS is off unless BENCH_SERVER_TLS names a mode (the test cluster has TLS); reads are
# routed to the streaming replica with BENCH_ROUTED=1 (pgmux only); BENCH_MODE=session runs
# both poolers in session mode; BENCH_WORKLOADS replaces the two workloads (see below). With BENCH_PROFILE_DIR set,
# each pgmux run's callgrind file is kept there; bench/profile_diff.py SHORT LONG TX turns a
# short and a long one into self instructions per transaction by function.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(build/pooler/pgmux)
short=${BENCH_SHORT_TX:-100}
long=${BENCH_LONG_TX:-1100}
clients=10

# shellcheck source=bench/common.sh
source bench/common.sh
counting_begin pgmux-bench-ir valgrind
bouncer=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)

# instructions BINARY TX_PER_CLIENT ARGS… → total instructions of one pgmux run
instructions() {
  local binary=$1 tx=$2 port out pid; shift 2
  out="$work/callgrind.out"
  counting_config "$work/ir.toml"
  rm -f "$out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" --config "$work/ir.toml" \
    >"$work/ir.log" 2>&1 &
  pid=$!
  wait_ready "$port"
  pgbench_checked "$port" "$@" -c "$clients" -j 2 -t "$tx"
  kill -INT "$pid"
  wait "$pid" || true
  [ -z "${BENCH_PROFILE_DIR:-}" ] || cp "$out" "$BENCH_PROFILE_DIR/$(basename "$binary")-$*-$tx.out"
  awk '/^totals:/ {print $2}' "$out"
}

# bouncer_instructions TX_PER_CLIENT ARGS… → total instructions of one PgBouncer 1.25.2 run
# (the same pool and clients; callgrind writes its totals when PgBouncer exits).
bouncer_instructions() {
  local tx=$1 out="$work/pgb-ir/callgrind.out"; shift
  rm -f "$out" "$work/pgb-ir/pgbouncer.pid"
  bouncer_prefix="valgrind --tool=callgrind --callgrind-out-file=$out --log-file=$out.log" \
    start_bouncer pgb-ir "$bouncer" "${BENCH_MODE:-transaction}" 10
  wait_ready "$bouncer_port"
  pgbench_checked "$bouncer_port" "$@" -c "$clients" -j 2 -t "$tx"
  kill -INT "$bouncer_pid"
  while kill -0 "$bouncer_pid" 2>/dev/null; do sleep 0.2; done
  awk '/^totals:/ {print $2}' "$out"
}

printf '| binary | workload | instructions per transaction |\n|---|---|---:|\n'
# BENCH_WORKLOADS: "NAME:PGBENCH ARGS" entries separated by ';' (e.g. "logins:-S -C").
IFS=';' read -r -a workloads <<< "${BENCH_WORKLOADS:--S:-S;-S -M prepared:-S -M prepared}"
for binary in "${binaries[@]}"; do
  for workload in "${workloads[@]}"; do
    name=${workload%%:*}
    read -r -a args <<< "${workload#*:}"
    a=$(instructions "$binary" "$short" "${args[@]}")
    b=$(instructions "$binary" "$long" "${args[@]}")
    printf '| %s | `%s` | %d |\n' "$binary" "$name" $(( (b - a) / ((long - short) * clients) ))
  done
done
[ "${BENCH_ROUTED:-0}" = 1 ] && exit 0  # PgBouncer does not route
for workload in "${workloads[@]}"; do
  name=${workload%%:*}
  read -r -a args <<< "${workload#*:}"
  a=$(bouncer_instructions "$short" "${args[@]}")
  b=$(bouncer_instructions "$long" "${args[@]}")
  printf '| pgbouncer-1.25.2 | `%s` | %d |\n' "$name" $(( (b - a) / ((long - short) * clients) ))
done
