#!/usr/bin/env bash
# Throughput and CPU per transaction by client count: pgbench -S (simple, extended, prepared)
# at 20, 100 and 400 clients in transaction mode (pool 20), directly against PostgreSQL (up to
# its max_connections), through pgmux (workers = 1 and 2) and through PgBouncer 1.25.2 and
# Debian's 1.18, in one run. Prints a Markdown table with ratios against 1.25.2 and writes a
# PNG chart (gnuplot) of TPS and CPU per 1,000 transactions by client count.
#   bench/scaling.sh [SECONDS_PER_RUN] [CHART.png]   (defaults 6, docs/benchmarks-scaling.png)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs="${1:-6}"
chart="${2:-docs/benchmarks-scaling.png}"
client_counts="${BENCH_CLIENT_COUNTS:-20 100 400}"
pool=20

scripts/install-deps.sh
command -v gnuplot >/dev/null || apt-get install -y -q gnuplot-nox >/dev/null
scripts/build.sh --target pgmux >/dev/null
bouncer_new=$(../shared/anchors/build-pgbouncer.sh 2>/dev/null | tail -1)
# shellcheck source=bench/common.sh
source bench/common.sh
bench_begin pgmux-scaling
max_direct=$(psql "host=127.0.0.1 port=$PRIMARY_PORT user=app dbname=app password=secret" -Atc \
  "SELECT current_setting('max_connections')::int - 20")

declare -A port_of pid_of
port_of[direct]=$PRIMARY_PORT pid_of[direct]=""
start_pgmux pgmux transaction "$pool"
port_of[pgmux]=$pgmux_port pid_of[pgmux]=$pgmux_pid
pgmux_workers=2 start_pgmux pgmux-w2 transaction "$pool"
port_of[pgmux-w2]=$pgmux_port pid_of[pgmux-w2]=$pgmux_pid
start_bouncer bouncer-new "$bouncer_new" transaction "$pool"
port_of[pgb-1.25]=$bouncer_port pid_of[pgb-1.25]=$bouncer_pid
start_bouncer bouncer-old /usr/sbin/pgbouncer transaction "$pool"
port_of[pgb-1.18]=$bouncer_port pid_of[pgb-1.18]=$bouncer_pid
targets="direct pgmux pgmux-w2 pgb-1.25 pgb-1.18"

export PGPASSWORD=secret
pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
"${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1
sleep 1

results="$work/results"
: > "$results"
for mode in simple extended prepared; do
  for n in $client_counts; do
    for target in $targets; do
      [ "$target" = direct ] && [ "$n" -gt "$max_direct" ] && continue
      # Debian's 1.18 cannot serve protocol-level prepared statements in transaction mode.
      [ "$target" = pgb-1.18 ] && [ "$mode" = prepared ] && continue
      read -r tps cpu _ _ aborted < <(measure "${port_of[$target]}" "${pid_of[$target]}" \
        -S -M "$mode" -c "$n" -j 2)
      echo "$mode $n $target $tps $cpu $aborted" >> "$results"
    done
  done
done

printf '| protocol | clients | target | tps | CPU-s / 1000 tx | tps vs 1.25.2 | CPU vs 1.25.2 |\n'
printf '|---|---:|---|---:|---:|---:|---:|\n'
awk '{ key = $1 " " $2; tps[key " " $3] = $4; cpu[key " " $3] = $5; line[NR] = $0 }
     END {
       for (i = 1; i <= NR; ++i) {
         split(line[i], f, " "); key = f[1] " " f[2]; ref = key " pgb-1.25"
         rt = (tps[ref] > 0 ? sprintf("%.2f×", f[4] / tps[ref]) : "–")
         rc = (cpu[ref] > 0 && f[3] != "direct" ? sprintf("%.2f×", f[5] / cpu[ref]) : "–")
         printf "| %s | %s | %s | %.0f | %s | %s | %s |%s\n", f[1], f[2], f[3], f[4],
           (f[3] == "direct" ? "–" : f[5]), rt, rc, (f[6] > 0 ? " (" f[6] " clients aborted)" : "")
       }
     }' "$results"

# One data file per (protocol, target): client count, tps, CPU per 1000 tx.
for mode in simple extended prepared; do
  for target in $targets; do
    awk -v m="$mode" -v t="$target" '$1 == m && $3 == t { print $2, $4, $5 }' "$results" \
      > "$work/$mode-$target.dat"
  done
done
declare -A color_of=([direct]="#000000" [pgmux]="#d62728" [pgmux-w2]="#ff7f0e"
  [pgb-1.25]="#1f77b4" [pgb-1.18]="#2ca02c")
plot_series() {  # plot_series PROTOCOL COLUMN → the gnuplot plot list of one panel
  local mode=$1 col=$2 list="" target
  for target in $targets; do
    [ -s "$work/$mode-$target.dat" ] || continue
    [ "$col" = 3 ] && [ "$target" = direct ] && continue
    list+="'$work/$mode-$target.dat' using 1:$col with linespoints lw 2 pt 7"
    list+=" lc rgb '${color_of[$target]}' title '$target', "
  done
  echo "${list%, }"
}
{
  echo "set terminal pngcairo size 1500,800 font ',10'"
  echo "set output '$chart'"
  echo "set multiplot layout 2,3 title 'pgbench -S, transaction mode, pool $pool, by client count" \
    "($(date -u +%F); CPU is the pooler process)'"
  echo "set logscale x; set xtics ($(echo "$client_counts" | sed 's/ /, /g')); set grid"
  echo "set key bottom left font ',9'; set yrange [0:*]"
  for mode in simple extended prepared; do
    echo "set title '$mode: transactions per second'; plot $(plot_series "$mode" 2)"
  done
  echo "set key top left"
  for mode in simple extended prepared; do
    echo "set title '$mode: CPU-seconds per 1,000 transactions'; set xlabel 'clients'"
    echo "plot $(plot_series "$mode" 3)"
  done
  echo "unset multiplot"
} | gnuplot
echo "chart: $chart"
