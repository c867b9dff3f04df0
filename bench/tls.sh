#!/usr/bin/env bash
# TLS on both legs, side by side: pgmux, PgBouncer 1.25.2 (../shared/anchors) and Debian's
# 1.18, configured alike (transaction pooling, pool 16, SCRAM, client TLS required with the
# same certificate, server TLS required), and PostgreSQL directly over TLS. Reports CPU-seconds
# of the pooler process per 1,000 TLS + SCRAM logins (pgbench -C: one login and one SELECT
# per transaction) and per 1,000 pgbench -S transactions over TLS, with ratios against
# PgBouncer 1.25.2. Medians of $BENCH_REPS interleaved repetitions (default 3).
#   bench/tls.sh [SECONDS_PER_RUN]      (default 10; every run is bounded by -T)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs="${1:-10}"
reps="${BENCH_REPS:-3}"

scripts/install-deps.sh
scripts/build.sh --target pgmux >/dev/null
bouncer_new=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)
bouncer_old=/usr/sbin/pgbouncer
# shellcheck source=bench/common.sh
source bench/common.sh
bench_begin pgmux-tls
tls="$work/cluster/tls"
certs="$work/certs"
mkdir -p "$certs"
cp "$tls/pgmux.crt" "$tls/pgmux.key" "$certs/"
chown -R pgmux-pg "$certs"
chmod 600 "$certs/pgmux.key"

pgmux_extra="client_tls_mode = \"require\"
client_tls_cert_file = \"$certs/pgmux.crt\"
client_tls_key_file = \"$certs/pgmux.key\"
server_tls_mode = \"require\""
start_pgmux pgmux-tls transaction 16
poolers=("pgmux:$pgmux_port:$pgmux_pid")
bouncer_extra="client_tls_sslmode = require
client_tls_cert_file = $certs/pgmux.crt
client_tls_key_file = $certs/pgmux.key
server_tls_sslmode = require"
start_bouncer bouncer-1.25.2 "$bouncer_new" transaction 16
poolers+=("pgbouncer-1.25.2:$bouncer_port:$bouncer_pid")
start_bouncer bouncer-1.18 "$bouncer_old" transaction 16
poolers+=("pgbouncer-1.18:$bouncer_port:$bouncer_pid")
poolers+=("direct:$PRIMARY_PORT:")

export PGPASSWORD=secret PGSSLMODE=require
pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
"${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1
hz=$(getconf CLK_TCK)

# measure PORT PID ARGS… → "tps cpu_s_per_1000tx"
measure() {
  local port=$1 pid=$2; shift 2
  local before after out tx tps
  before=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
  out=$("${pgbench[@]}" -p "$port" -T "$secs" "$@" app 2>&1) || true
  after=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
  tx=$(echo "$out" | awk '/number of transactions actually processed/ {split($0,a,": "); split(a[2],b,"/"); print b[1]}')
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  awk -v t="${tps:-0}" -v d=$((after - before)) -v hz="$hz" -v tx="${tx:-0}" \
    'BEGIN { printf "%s %.4f\n", t, (tx > 0 ? d / hz / tx * 1000 : 0) }'
}

: > "$work/results"
for rep in $(seq "$reps"); do
  for workload in "logins:-S -C -c 8 -j 2" "select-only:-S -c 16 -j 2"; do
    name=${workload%%:*}
    read -r -a args <<< "${workload#*:}"
    for p in "${poolers[@]}"; do
      IFS=: read -r label port pid <<< "$p"
      read -r tps cpu < <(measure "$port" "$pid" "${args[@]}")
      echo "$name $label $tps $cpu" >> "$work/results"
      printf 'rep %s %-12s %-17s tps %10s  cpu_s/1000tx %s\n' "$rep" "$name" "$label" "$tps" "$cpu" >&2
    done
  done
done

echo
echo "TLS on both legs, transaction pooling, pool 16, medians of $reps (pgmux workers = 1)"
printf '%-12s %-17s %10s %14s %18s\n' workload target tps cpu_s/1000tx "cpu vs 1.25.2"
for name in logins select-only; do
  ref=$(awk -v n="$name" '$1 == n && $2 == "pgbouncer-1.25.2" {print $4}' "$work/results" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  for p in "${poolers[@]}"; do
    label=${p%%:*}
    tps=$(awk -v n="$name" -v l="$label" '$1 == n && $2 == l {print $3}' "$work/results" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    cpu=$(awk -v n="$name" -v l="$label" '$1 == n && $2 == l {print $4}' "$work/results" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    ratio=$(awk -v c="$cpu" -v r="$ref" 'BEGIN { if (r > 0 && c > 0) printf "%.2fx", c / r; else print "-" }')
    printf '%-12s %-17s %10s %14s %18s\n' "$name" "$label" "$tps" "$cpu" "$ratio"
  done
done
