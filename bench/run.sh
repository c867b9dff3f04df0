#!/usr/bin/env bash
# Side-by-side benchmark: pgbench directly against PostgreSQL, through pgmux and through
# PgBouncer (Debian's package), in one run on one machine. Reports throughput, CPU-seconds of
# the pooler process per 1,000 transactions (from /proc/PID/stat) and RSS per client
# connection, with ratios against PgBouncer and direct connections.
#   bench/run.sh [SECONDS_PER_RUN]      (default 10; every run is bounded by -T)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs="${1:-10}"
clients="${BENCH_CLIENTS:-16}"
pool="${BENCH_POOL:-16}"
big_clients="${BENCH_RSS_CLIENTS:-200}"
tx_clients="${BENCH_TX_CLIENTS:-50}"
tx_pool="${BENCH_TX_POOL:-10}"

scripts/install-deps.sh
scripts/build.sh --target pgmux pgmux_classify_bench >/dev/null
# shellcheck source=bench/common.sh
source bench/common.sh
bench_begin pgmux-bench

start_pgmux pgmux-session session $((big_clients + 10))
start_bouncer bouncer-session /usr/sbin/pgbouncer session $((big_clients + 10))

export PGPASSWORD=secret
pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
"${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1

hz=$(getconf CLK_TCK)

# run NAME PORT PID ARGS… → prints "tps cpu_per_1000tx transactions failed aborted_clients"
run() {
  local port=$1 pid=$2; shift 2
  local before after out tx
  before=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
  out=$("${pgbench[@]}" -p "$port" -T "$secs" "$@" app 2>&1) || true  # failures are reported
  after=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
  tx=$(echo "$out" | awk '/number of transactions actually processed/ {split($0,a,": "); split(a[2],b,"/"); print b[1]}')
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
  # A client that hits an error (e.g. "prepared statement does not exist") stops; pgbench
  # counts it apart from failed transactions.
  aborted=$(echo "$out" | grep -c "aborted in command" || true)
  awk -v t="$tps" -v d=$((after - before)) -v hz="$hz" -v tx="$tx" -v f="${failed:-0}" -v a="$aborted" \
    'BEGIN { printf "%s %.4f %s %s %s\n", (t == "" ? 0 : t), (tx > 0 ? d / hz / tx * 1000 : 0), (tx == "" ? 0 : tx), f, a }'
}

# run_workloads "NAME:pgbench args" … → one line per (workload, target), results recorded.
# Uses the pooler ports/pids currently in pgmux_port/pgmux_pid and bouncer_port/bouncer_pid.
targets="direct pgmux pgbouncer"
run_workloads() {
  local workload name target port pid tps cpu tx failed aborted
  for workload in "$@"; do
    name=${workload%%:*}
    read -r -a args <<< "${workload#*:}"
    for target in $targets; do
      case $target in
        direct) port=$PRIMARY_PORT pid="" ;;
        replica) port=$REPLICA_PORT pid="" ;;
        pgmux) port=$pgmux_port pid=$pgmux_pid ;;
        pgbouncer) port=$bouncer_port pid=$bouncer_pid ;;
      esac
      read -r tps cpu tx failed aborted < <(run "$port" "$pid" "${args[@]}")
      printf '%-28s %-9s %12s %16s %10s %10s\n' "$name" "$target" "$tps" "$cpu" "${failed:-?}" "${aborted:-?}"
      echo "$name $target $tps $cpu $aborted" >> "$work/results"
    done
  done
}

printf '\n%-28s %-9s %12s %16s %10s %10s\n' "workload" "target" "tps" "cpu_s/1000tx" "failed" "aborted"
run_workloads "select-only:-S -c $clients -j 2" "tpcb:-c $clients -j 2" \
              "select-only-extended:-S -M extended -c $clients -j 2" \
              "connect-per-tx:-S -C -c 8 -j 2"

# Transaction pooling: $tx_clients clients over $tx_pool server connections. A run a pooler
# cannot complete (PgBouncer 1.18 with -M prepared) shows 0 tps.
session_pgmux_port=$pgmux_port session_pgmux_pid=$pgmux_pid
session_bouncer_port=$bouncer_port session_bouncer_pid=$bouncer_pid
start_pgmux pgmux-tx transaction "$tx_pool"
start_bouncer bouncer-tx /usr/sbin/pgbouncer transaction "$tx_pool"
sleep 0.5
printf '\nTransaction pooling, %s clients over a pool of %s:\n' "$tx_clients" "$tx_pool"
run_workloads "tx-select-simple:-S -c $tx_clients -j 2" \
              "tx-select-prepared:-S -M prepared -c $tx_clients -j 2" \
              "tx-tpcb-prepared:-M prepared -c $tx_clients -j 2"

# Read/write routing: the same select-only load through pgmux with reads sent to the replica,
# against the primary and the replica directly (PgBouncer does not route).
start_pgmux pgmux-routed transaction "$tx_pool" routed
sleep 0.5
printf '\nRead/write routing (transaction mode, pool of %s per server), %s clients:\n' "$tx_pool" "$clients"
targets="direct replica pgmux"
run_workloads "routed-select-only:-S -c $clients -j 2"
# Writes: each transaction that wrote also reads its WAL position (read-your-writes).
targets="direct pgmux"
run_workloads "routed-tpcb:-c $clients -j 2"
targets="direct pgmux pgbouncer"

pgmux_port=$session_pgmux_port pgmux_pid=$session_pgmux_pid
bouncer_port=$session_bouncer_port bouncer_pid=$session_bouncer_pid

# Memory: RSS growth with $big_clients connected clients, per client.
printf '\nRSS per client connection (%s clients, session pool of %s):\n' "$big_clients" "$((big_clients + 10))"
for target in pgmux pgbouncer; do
  if [ $target = pgmux ]; then port=$pgmux_port pid=$pgmux_pid; else port=$bouncer_port pid=$bouncer_pid; fi
  base=$(rss_kb "$pid")
  "${pgbench[@]}" -p "$port" -S -c "$big_clients" -j 2 -T "$secs" app >/dev/null 2>&1 &
  bp=$!
  sleep $((secs / 2 + 1))
  peak=$(rss_kb "$pid")
  wait $bp || true
  awk -v t=$target -v b="$base" -v p="$peak" -v n="$big_clients" \
    'BEGIN { printf "  %-10s base %6d kB, loaded %6d kB, %.1f kB per client\n", t, b, p, (p - b) / n }'
done

echo
echo "Ratios (pgmux / pgbouncer, pgmux / direct):"
awk '{tps[$1" "$2]=$3; cpu[$1" "$2]=$4; ab[$1" "$2]=$5; names[$1]=1}
     END { for (n in names) {
       if (!((n" pgbouncer") in tps)) { printf "  %-24s tps %.2fx of direct (primary)\n", n, tps[n" pgmux"]/tps[n" direct"]; continue }
       if (tps[n" pgbouncer"] == 0) { printf "  %-24s pgbouncer failed; pgmux %.2fx of direct\n", n, tps[n" pgmux"]/tps[n" direct"]; continue }
       if (ab[n" pgbouncer"] > 0) printf "  %-24s (pgbouncer: %d clients aborted with errors)\n", n, ab[n" pgbouncer"]
       printf "  %-24s tps %.2fx of pgbouncer, %.2fx of direct; cpu/tx %.2fx of pgbouncer\n", n,
         tps[n" pgmux"]/tps[n" pgbouncer"], tps[n" pgmux"]/tps[n" direct"],
         (cpu[n" pgbouncer"] > 0 ? cpu[n" pgmux"]/cpu[n" pgbouncer"] : 0) } }' "$work/results"

echo
build/bench/pgmux_classify_bench 20000
