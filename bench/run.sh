#!/usr/bin/env bash
# Side-by-side benchmark: pgbench directly against PostgreSQL, through pgmux and through
# PgBouncer 1.25.2 (built by ../shared/anchors/build-pgbouncer.sh) and Debian's 1.18, in one
# run on one machine. Reports throughput, CPU-seconds of the pooler process per 1,000
# transactions (from /proc/PID/stat) and RSS per client connection, with ratios against both
# PgBouncers and direct connections. pgmux runs with workers = 1 (per core, as PgBouncer);
# the transaction-pooling runs add pgmux with workers = 2 ("pgmux-w2").
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
bouncer_new=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)
bouncer_old=/usr/sbin/pgbouncer
# shellcheck source=bench/common.sh
source bench/common.sh
bench_begin pgmux-bench

# start_all MODE POOL → pgmux and both PgBouncers in that mode (ports and pids in port_of/pid_of)
declare -A port_of pid_of
start_all() {
  local mode=$1 size=$2
  start_pgmux "pgmux-$mode" "$mode" "$size"
  port_of[pgmux]=$pgmux_port pid_of[pgmux]=$pgmux_pid
  start_bouncer "bouncer-new-$mode" "$bouncer_new" "$mode" "$size"
  port_of[pgb-1.25]=$bouncer_port pid_of[pgb-1.25]=$bouncer_pid
  start_bouncer "bouncer-old-$mode" "$bouncer_old" "$mode" "$size"
  port_of[pgb-1.18]=$bouncer_port pid_of[pgb-1.18]=$bouncer_pid
}
port_of[direct]=$PRIMARY_PORT pid_of[direct]=""
port_of[replica]=$REPLICA_PORT pid_of[replica]=""
start_all session $((big_clients + 10))

export PGPASSWORD=secret
pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
"${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1

# run_workloads "NAME:pgbench args" … → one line per (workload, target), results recorded.
# Targets ($targets) are looked up in port_of/pid_of.
targets="direct pgmux pgb-1.25 pgb-1.18"
run_workloads() {
  local workload name target tps cpu tx failed aborted
  for workload in "$@"; do
    name=${workload%%:*}
    read -r -a args <<< "${workload#*:}"
    for target in $targets; do
      read -r tps cpu tx failed aborted < <(measure "${port_of[$target]}" "${pid_of[$target]}" "${args[@]}")
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
declare -A session_port session_pid
for t in pgmux pgb-1.25 pgb-1.18; do session_port[$t]=${port_of[$t]} session_pid[$t]=${pid_of[$t]}; done
start_all transaction "$tx_pool"
pgmux_workers=2 start_pgmux pgmux-tx-w2 transaction "$tx_pool"
port_of[pgmux-w2]=$pgmux_port pid_of[pgmux-w2]=$pgmux_pid
sleep 0.5
printf '\nTransaction pooling, %s clients over a pool of %s:\n' "$tx_clients" "$tx_pool"
targets="direct pgmux pgmux-w2 pgb-1.25 pgb-1.18"
run_workloads "tx-select-simple:-S -c $tx_clients -j 2" \
              "tx-select-prepared:-S -M prepared -c $tx_clients -j 2" \
              "tx-tpcb-prepared:-M prepared -c $tx_clients -j 2"
# Done with these: their server connections go back to PostgreSQL (max_connections = 300 is
# shared by every pooler here, and the RSS runs below need 200 each).
for t in pgmux pgmux-w2 pgb-1.25 pgb-1.18; do kill -INT "${pid_of[$t]}" 2>/dev/null || true; done

# Read/write routing: the same select-only load through pgmux with reads sent to the replica,
# against the primary and the replica directly (PgBouncer does not route).
start_pgmux pgmux-routed transaction "$tx_pool" routed
port_of[pgmux]=$pgmux_port pid_of[pgmux]=$pgmux_pid
sleep 0.5
printf '\nRead/write routing (transaction mode, pool of %s per server), %s clients:\n' "$tx_pool" "$clients"
targets="direct replica pgmux"
run_workloads "routed-select-only:-S -c $clients -j 2"
# Writes: each transaction that wrote also reads its WAL position (read-your-writes).
targets="direct pgmux"
run_workloads "routed-tpcb:-c $clients -j 2"
kill -INT "${pid_of[pgmux]}" 2>/dev/null || true

# Memory: RSS growth with $big_clients connected clients, per client.
printf '\nRSS per client connection (%s clients, session pool of %s):\n' "$big_clients" "$((big_clients + 10))"
for target in pgmux pgb-1.25 pgb-1.18; do
  port=${session_port[$target]} pid=${session_pid[$target]}
  base=$(rss_kb "$pid")
  "${pgbench[@]}" -p "$port" -S -c "$big_clients" -j 2 -T "$secs" app >/dev/null 2>&1 &
  bp=$!
  sleep $((secs / 2 + 1))
  peak=$(rss_kb "$pid")
  wait $bp || true
  kill -INT "$pid" 2>/dev/null || true  # its 200 server connections go back for the next
  awk -v t=$target -v b="$base" -v p="$peak" -v n="$big_clients" \
    'BEGIN { printf "  %-10s base %6d kB, loaded %6d kB, %.1f kB per client\n", t, b, p, (p - b) / n }'
done

echo
echo "Ratios (pgmux / PgBouncer 1.25.2 and 1.18, pgmux / direct; 0 tps: that pooler failed):"
awk '{tps[$1" "$2]=$3; cpu[$1" "$2]=$4; ab[$1" "$2]=$5; names[$1]=1}
     function ratio(a, b) { return (b > 0 ? sprintf("%.2fx", a / b) : "-") }
     END { for (n in names) {
       for (who in ab) if (ab[who] > 0 && index(who, n" ") == 1) printf "  (%s: %d clients aborted with errors)\n", who, ab[who]
       line = sprintf("  %-22s tps %s of direct", n, ratio(tps[n" pgmux"], tps[n" direct"]))
       if ((n" pgb-1.25") in tps)
         line = line sprintf("; vs 1.25.2: tps %s, cpu/tx %s; vs 1.18: tps %s, cpu/tx %s",
           ratio(tps[n" pgmux"], tps[n" pgb-1.25"]), ratio(cpu[n" pgmux"], cpu[n" pgb-1.25"]),
           ratio(tps[n" pgmux"], tps[n" pgb-1.18"]), ratio(cpu[n" pgmux"], cpu[n" pgb-1.18"]))
       if ((n" pgmux-w2") in tps)
         line = line sprintf("; workers=2: tps %s, cpu/tx %s of workers=1",
           ratio(tps[n" pgmux-w2"], tps[n" pgmux"]), ratio(cpu[n" pgmux-w2"], cpu[n" pgmux"]))
       print line } }' "$work/results"

echo
build/bench/pgmux_classify_bench 20000
