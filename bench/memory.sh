#!/usr/bin/env bash
# Memory side by side: pgmux, PgBouncer 1.25.2 (built from ../shared/anchors) and Debian's
# PgBouncer 1.18, all in transaction mode with SCRAM, one worker/process each, in one run.
#  1. Idle clients: N authenticated SCRAM clients (each served one query, then idle) per pooler;
#     RSS per client from /proc/PID/status and the kernel's TCP memory from /proc/net/sockstat.
#  2. Pre-auth floods: 1,000 connections stalled before login (a startup header claiming
#     60 MB, half a startup packet, a SCRAM exchange abandoned after client-first); RSS during
#     and after each flood, and whether a normal client logs in and queries meanwhile. A
#     watchdog stops a flood once the pooler's RSS has grown by more than 2 GB.
#   bench/memory.sh [N ...]      (default: 1000 10000)
# While working on pgmux: BENCH_ONLY_PGMUX=1 leaves the PgBouncers out, BENCH_FLOODS=0 the
# floods; a figure for a document comes from a full run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000)
flood_size=${BENCH_FLOOD:-1000}
holders=${BENCH_HOLDERS:-5}  # client processes per pooler (a process may hold 20,000 files)

scripts/install-deps.sh
scripts/build.sh --target pgmux >/dev/null
bouncer_new=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)
bouncer_old=/usr/sbin/pgbouncer
# shellcheck source=bench/common.sh
source bench/common.sh
ulimit -n 20000
bench_begin pgmux-bench-mem
tcp_mem_kb() { awk -v pg="$(getconf PAGESIZE)" '/^TCP:/ {for (i=1;i<NF;i++) if ($i=="mem") print $(i+1)*pg/1024}' /proc/net/sockstat; }
conninfo() { echo "host=127.0.0.1 port=$1 user=app password=secret dbname=app sslmode=disable"; }
psql_ok() {
  PGCONNECT_TIMEOUT=10 psql "$(conninfo "$1")" -Atc "SELECT 'ok'" 2>/dev/null | grep -qx ok && echo yes || echo no
}

# start_poolers → fresh pgmux, PgBouncer 1.25.2 and 1.18 in `poolers` (name:port:pid).
start_poolers() {
  start_pgmux pgmux transaction 20
  if [ "${BENCH_ONLY_PGMUX:-0}" = 1 ]; then
    poolers=("pgmux:$pgmux_port:$pgmux_pid")
    sleep 0.5; psql_ok "$pgmux_port" >/dev/null
    return
  fi
  start_bouncer bouncer-1.25.2 "$bouncer_new" transaction 20
  local new_port=$bouncer_port new_pid=$bouncer_pid
  start_bouncer bouncer-1.18 "$bouncer_old" transaction 20
  poolers=("pgmux:$pgmux_port:$pgmux_pid" "pgbouncer-1.25.2:$new_port:$new_pid"
           "pgbouncer-1.18:$bouncer_port:$bouncer_pid")
  sleep 0.5
  for p in "${poolers[@]}"; do IFS=: read -r _ port _ <<< "$p"; psql_ok "$port" >/dev/null; done
}
stop_poolers() {
  for p in "${poolers[@]}"; do IFS=: read -r _ _ pid <<< "$p"; kill -INT "$pid" 2>/dev/null || true; done
  sleep 1
  rm -rf "$work"/bouncer-*
}

# hold_idle NAME PORT PID N → one table row: N idle clients over $holders processes.
hold_idle() {
  local name=$1 port=$2 pid=$3 n=$4 before tcp_before after tcp_after left ready=0 fd
  before=$(rss_kb "$pid") tcp_before=$(tcp_mem_kb)
  local fifo_dir per k i
  fifo_dir=$(mktemp -d "$work/hold.XXXXXX")
  per=$(( (n + holders - 1) / holders )) left=$n
  for i in $(seq "$holders"); do
    k=$(( left < per ? left : per )); left=$((left - k))
    [ "$k" -gt 0 ] || continue
    mkfifo "$fifo_dir/in$i"
    /usr/bin/python3 bench/hold_clients.py "$(conninfo "$port")" "$k" < "$fifo_dir/in$i" > "$fifo_dir/out$i" 2>&1 &
    exec {fd}> "$fifo_dir/in$i"; echo "$fd" >> "$fifo_dir/fds"
  done
  for _ in $(seq 600); do
    ready=$(cat "$fifo_dir"/out* 2>/dev/null | awk '/^ready/ {s += $2} END {print s + 0}')
    [ "$ready" -ge "$n" ] && break
    if grep -q Error "$fifo_dir"/out* 2>/dev/null; then
      echo "$name: clients failed:" >&2; grep -h Error "$fifo_dir"/out* | sort | uniq -c >&2; break
    fi
    sleep 0.5
  done
  sleep 4  # idle past client_dormant_after_ms (2 s) before measuring
  after=$(rss_kb "$pid") tcp_after=$(tcp_mem_kb)
  while read -r fd; do exec {fd}>&-; done < "$fifo_dir/fds"
  sleep $(( n / 2000 + 4 ))  # they disconnect; pgmux gives freed pages back every 2 s
  left=$(rss_kb "$pid")
  awk -v name="$name" -v n="$ready" -v b="$before" -v a="$after" -v l="$left" -v tb="$tcp_before" -v ta="$tcp_after" \
    'BEGIN { printf "| %s | %d | %.1f MB | %.1f MB | %.0f B | %.0f B | %.1f MB |\n", name, n, b/1024, a/1024, (a-b)*1024/n, (ta-tb)*1024/n, l/1024 }'
}

# flood NAME PORT PID KIND → one table row.
flood() {
  local name=$1 port=$2 pid=$3 kind=$4 before peak now served after flood_pid ffd
  before=$(rss_kb "$pid")
  rm -f "$work/flood.in"; mkfifo "$work/flood.in"
  /usr/bin/python3 bench/flood.py "$port" "$kind" "$flood_size" < "$work/flood.in" > "$work/flood.out" 2>&1 &
  flood_pid=$!
  exec {ffd}> "$work/flood.in"
  peak=$before
  for _ in $(seq 600); do
    now=$(rss_kb "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    if [ $((now - before)) -gt $((2 * 1024 * 1024)) ]; then
      echo "watchdog: $name grew past 2 GB during $kind; stopping the flood" >&2
      kill "$flood_pid" 2>/dev/null || true; break
    fi
    grep -q '^ready' "$work/flood.out" 2>/dev/null && break
    kill -0 "$flood_pid" 2>/dev/null || break
    sleep 0.2
  done
  sleep 0.5
  now=$(rss_kb "$pid"); [ "$now" -gt "$peak" ] && peak=$now
  served=$(psql_ok "$port")
  exec {ffd}>&-
  wait "$flood_pid" 2>/dev/null || true
  sleep 3
  after=$(rss_kb "$pid")
  awk -v name="$name" -v k="$kind" -v b="$before" -v d="$peak" -v a="$after" -v s="$served" \
    'BEGIN { printf "| %s | %s | %.1f MB | %.1f MB | %+.1f MB | %.1f MB | %s |\n", name, k, b/1024, d/1024, (d-b)/1024, a/1024, s }'
}

idle_table="$work/idle.md"
printf '| pooler | clients | RSS before | RSS with clients | RSS per client | kernel TCP memory per client | RSS after they left |\n|---|---:|---:|---:|---:|---:|---:|\n' > "$idle_table"
start_poolers
for n in "${counts[@]}"; do
  for p in "${poolers[@]}"; do
    IFS=: read -r name port pid <<< "$p"
    hold_idle "$name" "$port" "$pid" "$n" >> "$idle_table"
  done
done
stop_poolers

echo
echo "Idle SCRAM clients, transaction mode (pgmux workers = 1):"
cat "$idle_table"
[ "${BENCH_FLOODS:-1}" = 1 ] || exit 0

# Fresh poolers: what the idle clients left in a heap must not absorb a flood's memory.
flood_table="$work/flood.md"
printf '| pooler | flood (%d connections) | RSS before | RSS during | growth | RSS after | normal client served during |\n|---|---|---:|---:|---:|---:|---|\n' "$flood_size" > "$flood_table"
start_poolers
for p in "${poolers[@]}"; do
  IFS=: read -r name port pid <<< "$p"
  for kind in claim60mb half midscram; do flood "$name" "$port" "$pid" "$kind" >> "$flood_table"; done
done

echo
echo "Pre-authentication floods:"
cat "$flood_table"
