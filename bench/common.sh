# Shared by the bench/ scripts (sourced): a scratch directory with a primary + replica that
# go away at exit, free ports, /proc readings, and starting PgBouncer as the cluster's
# unprivileged OS user.

# bench_begin NAME → $work (scratch directory), `pids` (stopped at exit), the cluster's
# PRIMARY_PORT and REPLICA_PORT.
bench_begin() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod o+rx "$work"
  pids=()
  trap bench_end EXIT
  scripts/pg-cluster.sh start "$work/cluster" >/dev/null
  # shellcheck disable=SC1091
  source "$work/cluster/cluster.env"
}
bench_end() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  scripts/pg-cluster.sh destroy "$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# start_pgmux NAME MODE POOL [routed] → sets pgmux_port/pgmux_pid (one worker, to compare per
# core, unless $pgmux_workers says otherwise). "routed": the replica is configured and reads
# go to it. $pgmux_bin (default: this
# checkout's build) is the binary started; $pgmux_extra is added to [pgmux] (e.g. TLS keys;
# default: server TLS off, as PgBouncer's below, so that the plain-text figures stay plain).
start_pgmux() {
  local name=$1 mode=$2 pool=$3 routing=""
  if [ "${4:-}" = routed ]; then
    routing="replicas = [ { host = \"127.0.0.1\", port = $REPLICA_PORT } ]
read_write_split = \"on\""
  fi
  pgmux_port=$(free_port)
  # Outside the here-document: inside it, bash would strip the default's quotes.
  local extra=${pgmux_extra:-'server_tls_mode = "disable"'}
  cat > "$work/$name.toml" <<TOML
[pgmux]
listen_port = $pgmux_port
workers = ${pgmux_workers:-1}
log_level = "warn"
$extra
[pool]
mode = "$mode"
size = $pool
max_client_conn = 30000
[databases.app]
primary = { host = "127.0.0.1", port = $PRIMARY_PORT }
$routing
[users.app]
password = "secret"
TOML
  "${pgmux_bin:-build/pooler/pgmux}" --config "$work/$name.toml" 2>"$work/$name.log" &
  pgmux_pid=$!
  pids+=("$pgmux_pid")
}

# start_bouncer NAME BINARY MODE POOL → sets bouncer_port/bouncer_pid; $bouncer_extra is added
# to [pgbouncer] (files it names must be readable by the cluster user); $bouncer_prefix runs
# before the binary (valgrind, for instructions.sh). PgBouncer refuses root;
# setpriv (not runuser, whose PAM session drops the open-files limit to 1024) runs it as the
# cluster user with this shell's limits.
start_bouncer() {
  local name=$1 binary=$2 mode=$3 pool=$4 dir="$work/$1"
  bouncer_port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PRIMARY_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $mode
default_pool_size = $pool
max_client_conn = 30000
max_prepared_statements = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
unix_socket_dir =
${bouncer_extra:-server_tls_sslmode = disable}
INI
  # PgBouncer 1.18 predates max_prepared_statements (1.21) and would refuse the key.
  "$binary" --version 2>/dev/null | grep -q "PgBouncer 1\.1[0-9]\." &&
    sed -i '/^max_prepared_statements/d' "$dir/pgbouncer.ini"
  echo '"app" "secret"' > "$dir/userlist.txt"
  chown -R pgmux-pg "$dir"
  chmod o+x "$work"
  # shellcheck disable=SC2086  # $bouncer_prefix: a command and its words (e.g. valgrind)
  setpriv --reuid pgmux-pg --regid pgmux-pg --init-groups ${bouncer_prefix:-} "$binary" -q \
    "$dir/pgbouncer.ini" &
  for _ in $(seq 150); do [ -s "$dir/pgbouncer.pid" ] && break; sleep 0.1; done
  bouncer_pid=$(cat "$dir/pgbouncer.pid")
  pids+=("$bouncer_pid")
}

# measure PORT PID ARGS… → one `${pgbench[@]} -T $secs` run against PORT, with the CPU of process
# PID (none for direct); prints "tps cpu_per_1000tx transactions failed aborted_clients".
measure() {
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
  awk -v t="$tps" -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v tx="$tx" -v f="${failed:-0}" -v a="$aborted" \
    'BEGIN { printf "%s %.4f %s %s %s\n", (t == "" ? 0 : t), (tx > 0 ? d / hz / tx * 1000 : 0), (tx == "" ? 0 : tx), f, a }'
}

# For the scripts that count per transaction (instructions.sh, allocations.sh):
# counting_config FILE → sets `port` and writes a transaction-mode config there (one worker,
# pool 10, server TLS as $BENCH_SERVER_TLS or off; reads routed to the replica when
# BENCH_ROUTED=1); wait_ready PORT → until pgmux answers;
# pgbench_checked PORT ARGS… → one pgbench run, reported if any transaction failed.
counting_config() {
  port=$(free_port)
  cat > "$1" <<TOML
[pgmux]
listen_port = $port
workers = 1
log_level = "warn"
server_tls_mode = "${BENCH_SERVER_TLS:-disable}"
[pool]
mode = "${BENCH_MODE:-transaction}"
size = 10
[databases.app]
primary = { host = "127.0.0.1", port = $PRIMARY_PORT }
TOML
  if [ "${BENCH_ROUTED:-0}" = 1 ]; then
    printf 'replicas = [ { host = "127.0.0.1", port = %s } ]\nread_write_split = "on"\n' \
      "$REPLICA_PORT" >> "$1"
  fi
  printf '[users.app]\npassword = "secret"\n' >> "$1"
}
wait_ready() {
  for _ in $(seq 150); do
    psql "host=127.0.0.1 port=$1 user=app dbname=app" -Atc 'SELECT 1' >/dev/null 2>&1 && return
    sleep 0.2
  done
}
pgbench_checked() {
  local port=$1; shift
  "${pgbench[@]}" -p "$port" "$@" app >"$work/pgbench.out" 2>&1
  grep -q "number of failed transactions: 0" "$work/pgbench.out" ||
    { echo "pgbench failed against port $port:" >&2; cat "$work/pgbench.out" >&2; }
}

# counting_begin NAME [TOOL] → for the scripts that count per transaction: the project's
# packages (and TOOL, e.g. valgrind or strace), this checkout's pgmux built, the scratch
# cluster (bench_begin NAME) with pgbench's tables at scale 10, `pgbench` and PGPASSWORD set.
counting_begin() {
  scripts/install-deps.sh
  if [ -n "${2:-}" ]; then
    command -v "$2" >/dev/null || apt-get install -y -q "$2" >/dev/null
  fi
  scripts/build.sh --target pgmux >/dev/null
  bench_begin "$1"
  export PGPASSWORD=secret
  pgbench=(/usr/lib/postgresql/15/bin/pgbench -U app -h 127.0.0.1)
  "${pgbench[@]}" -p "$PRIMARY_PORT" -i -s 10 -q app >/dev/null 2>&1
}
