# Shared by the bench/ scripts (sourced): free ports, /proc readings, and starting PgBouncer
# as the cluster's unprivileged OS user. Expects $work (a scratch directory), the array
# `pids` (processes to stop at exit) and PRIMARY_PORT from the cluster's env file.

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# start_bouncer NAME BINARY MODE POOL → sets bouncer_port/bouncer_pid. PgBouncer refuses root;
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
INI
  # PgBouncer 1.18 predates max_prepared_statements (1.21) and would refuse the key.
  "$binary" --version 2>/dev/null | grep -q "PgBouncer 1\.1[0-9]\." &&
    sed -i '/^max_prepared_statements/d' "$dir/pgbouncer.ini"
  echo '"app" "secret"' > "$dir/userlist.txt"
  chown -R pgmux "$dir"
  chmod o+x "$work"
  setpriv --reuid pgmux --regid pgmux --init-groups "$binary" -q "$dir/pgbouncer.ini" &
  for _ in $(seq 50); do [ -s "$dir/pgbouncer.pid" ] && break; sleep 0.1; done
  bouncer_pid=$(cat "$dir/pgbouncer.pid")
  pids+=("$bouncer_pid")
}
