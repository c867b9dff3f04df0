#!/usr/bin/env bash
# A/B of pgmux against an earlier commit of itself: both binaries side by side on one cluster,
# transaction mode, pool 10, 50 clients, `workers = 1`, each workload run on the two in turn,
# REPS times (medians reported). CPU is the pgmux process's utime + stime per 1,000
# transactions (/proc/PID/stat). The old commit is built in a git worktree under .work/ab.
#   bench/ab.sh OLD_COMMIT [SECONDS_PER_RUN] [REPS]      (default 6 s, 3 repetitions)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
old_rev=$(git rev-parse --short "${1:?usage: bench/ab.sh OLD_COMMIT [SECONDS] [REPS]}")
secs=${2:-6}
reps=${3:-3}
clients=${BENCH_TX_CLIENTS:-50}
pool=${BENCH_TX_POOL:-10}

scripts/install-deps.sh
scripts/build.sh --target pgmux >/dev/null
old_tree=.work/ab/$old_rev
if [ ! -x "$old_tree/build/pooler/pgmux" ]; then
  rm -rf "$old_tree"
  git worktree prune
  git worktree add --detach "$old_tree" "$old_rev" >/dev/null
  (cd "$old_tree" && scripts/build.sh --target pgmux >/dev/null)
fi
# shellcheck source=bench/common.sh
source bench/common.sh
bench_begin pgmux-bench-ab

pgmux_bin=$old_tree/build/pooler/pgmux start_pgmux pgmux-old transaction "$pool"
old_port=$pgmux_port old_pid=$pgmux_pid
pgmux_bin=build/pooler/pgmux start_pgmux pgmux-new transaction "$pool"
new_port=$pgmux_port new_pid=$pgmux_pid
sleep 0.5

export PGPASSWORD=secret
pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
"${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1
hz=$(getconf CLK_TCK)

# one PORT PID ARGS… → "tps cpu_per_1000tx"
one() {
  local port=$1 pid=$2 before after out tx tps; shift 2
  before=$(cpu_ticks "$pid")
  out=$("${pgbench[@]}" -p "$port" -T "$secs" "$@" app 2>&1) || true
  after=$(cpu_ticks "$pid")
  tx=$(echo "$out" | awk '/number of transactions actually processed/ {split($0,a,": "); split(a[2],b,"/"); print b[1]}')
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  awk -v t="${tps:-0}" -v d=$((after - before)) -v hz="$hz" -v tx="${tx:-0}" \
    'BEGIN { printf "%.0f %.4f\n", t, (tx > 0 ? d / hz / tx * 1000 : 0) }'
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

printf '| workload | old tps | new tps | old CPU/1000 tx | new CPU/1000 tx |\n|---|---:|---:|---:|---:|\n'
for workload in "-S:-S" "-S -M prepared:-S -M prepared" "TPC-B:" ; do
  name=${workload%%:*}
  read -r -a args <<< "${workload#*:}"
  : > "$work/old" && : > "$work/new"
  for _ in $(seq "$reps"); do
    one "$old_port" "$old_pid" "${args[@]}" -c "$clients" -j 2 >> "$work/old"
    one "$new_port" "$new_pid" "${args[@]}" -c "$clients" -j 2 >> "$work/new"
  done
  printf '| `%s` | %s | %s | %s | %s |\n' "$name" \
    "$(cut -d' ' -f1 "$work/old" | median)" "$(cut -d' ' -f1 "$work/new" | median)" \
    "$(cut -d' ' -f2 "$work/old" | median)" "$(cut -d' ' -f2 "$work/new" | median)"
  echo "  $name runs (tps cpu): old $(tr '\n' ';' < "$work/old") new $(tr '\n' ';' < "$work/new")" >&2
done
