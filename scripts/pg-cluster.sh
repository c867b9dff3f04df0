#!/usr/bin/env bash
# Starts/stops a throw-away PostgreSQL 15 primary plus one streaming replica on
# loopback, for the pgmux test fixtures and the "run pgmux locally" demo.
#
#   pg-cluster.sh start   DIR [PRIMARY_PORT REPLICA_PORT]
#   pg-cluster.sh stop    DIR
#   pg-cluster.sh destroy DIR
#   pg-cluster.sh status  DIR
#   pg-cluster.sh stop-replica DIR | start-replica DIR   (failover tests)
#   pg-cluster.sh stop-primary DIR | start-primary DIR
#   pg-cluster.sh promote-replica DIR                   (failover tests)
#   pg-cluster.sh demote-primary DIR                    (switchover tests)
#
# `start` prints (and writes to DIR/cluster.env) PRIMARY_PORT=, REPLICA_PORT=,
# PGMUX_CLUSTER_DIR= and PG_BIN= lines; all progress goes to stderr. Running
# `start` again on an initialized DIR just starts the servers, reusing ports.
# Roles: app/secret (scram), admin/adminpass (superuser), md5user/md5pass (md5),
# pwuser/pwpass (cleartext `password` auth), replicator/replpass; db `app`.
# The unix socket directory of both servers is DIR itself (trust auth).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=pgmux-pg     # OS user the servers run as when we are root (not the package's pgmux)
WAIT_SECS=30         # bound for the replication wait loop
PGCTL_TIMEOUT=60     # bound for pg_ctl -w start/stop

log() { echo "pg-cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '5,8p' "$0" | sed 's/^#  *//' >&2; exit 2; }

# Prints the last lines of a log file to stderr (used in failure messages).
log_tail() { [ -f "$1" ] && { log "--- tail of $1 ---"; tail -n 25 "$1" >&2; }; return 0; }

# Runs a command as the server's OS user, from inside DIR so that a root-only
# current directory does not bother the PostgreSQL tools.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$DIR" && runuser -u "$PG_USER" -- "$@")
  else
    (cd "$DIR" && "$@")
  fi
}

# psql over the unix socket in DIR as the bootstrap superuser `postgres`.
psql_local() { # PORT [psql args...]
  local port=$1; shift
  as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$port" -U postgres -d postgres "$@"
}

is_running() { [ -f "$1/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

# True if nothing listens on TCP port $1 (any address).
port_free() {
  if command -v ss >/dev/null 2>&1; then
    [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
  fi
}

# Picks two distinct free ports starting from a random base in 15000-32000.
pick_ports() {
  # Below Linux's ephemeral range (32768+), so no client's source port can take it between
  # this check and the server's bind.
  local p=$((15000 + RANDOM % 17000)) tries=0 found=()
  while [ ${#found[@]} -lt 2 ]; do
    tries=$((tries + 1)); [ $tries -le 500 ] || die "could not find two free TCP ports"
    port_free "$p" && found+=("$p")
    p=$((p + 1)); [ $p -le 32000 ] || p=15000
  done
  PRIMARY_PORT=${found[0]}; REPLICA_PORT=${found[1]}
}

# As root: ensure the OS user exists, owns DIR and can reach DIR through its parents.
prepare_owner() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id "$PG_USER" >/dev/null 2>&1; then
    log "creating system user $PG_USER"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  fi
  chown "$PG_USER:" "$DIR"; chmod 700 "$DIR"
  local d; d=$(dirname "$DIR")
  while :; do
    if ! runuser -u "$PG_USER" -- test -x "$d"; then
      log "adding o+x to $d so that $PG_USER can traverse it"
      chmod o+x "$d"
    fi
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
}

# A throw-away CA and certificates in DIR/tls, made once per cluster:
#   server.{crt,key}  the PostgreSQL servers' (CN and SAN "localhost" only, so a client that
#                     checks the host name must name "localhost", and "127.0.0.1" fails);
#   pgmux.{crt,key}   for pgmux's own client-facing TLS (SAN localhost and 127.0.0.1);
#   client-app.{crt,key}  a client certificate with CN "app".
make_certs() {
  local t="$DIR/tls"
  [ -f "$t/client-app.crt" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed for the test certificates"
  log "making test certificates in $t"
  mkdir -p "$t"
  (
    cd "$t"
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=pgmux test CA" 2>/dev/null
    issue() { # NAME CN SAN
      openssl req -new -nodes -newkey rsa:2048 -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    issue server localhost "DNS:localhost"
    issue pgmux localhost "DNS:localhost,IP:127.0.0.1"
    issue client-app app "DNS:app"
    chmod 600 ./*.key
  ) || die "making test certificates failed"
  [ "$(id -u)" -ne 0 ] || chown "$PG_USER:" "$t/server.key" "$t/server.crt" "$t/ca.crt"
}

# Per-server settings; postgresql.conf includes this file, so rewriting it on every
# start keeps ports (and the replica's upstream) in sync with cluster.env.
write_conf() { # DATADIR PORT ROLE
  local f="$1/pgmux.conf"
  cat >"$f" <<EOF
# Written by scripts/pg-cluster.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$DIR'
ssl = on
ssl_cert_file = '$DIR/tls/server.crt'
ssl_key_file = '$DIR/tls/server.key'
ssl_ca_file = '$DIR/tls/ca.crt'
max_connections = 300
shared_buffers = 64MB
wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  if [ "$3" = replica ]; then
    echo "primary_conninfo = 'host=127.0.0.1 port=$PRIMARY_PORT user=replicator password=replpass application_name=replica'" >>"$f"
  fi
  grep -q "^include_if_exists 'pgmux.conf'" "$1/postgresql.conf" ||
    echo "include_if_exists 'pgmux.conf'" >>"$1/postgresql.conf"
  [ "$(id -u)" -ne 0 ] || chown "$PG_USER:" "$f"
}

start_server() { # DATADIR LOGFILE
  is_running "$1" && { log "$(basename "$1") already running"; return 0; }
  log "starting $(basename "$1")"
  as_pg "$PG_BIN/pg_ctl" -D "$1" -l "$2" -w -t "$PGCTL_TIMEOUT" start >/dev/null ||
    { log_tail "$2"; die "$(basename "$1") did not start"; }
}

stop_server() { # DATADIR
  is_running "$1" || return 0
  log "stopping $(basename "$1")"
  as_pg "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t "$PGCTL_TIMEOUT" stop >/dev/null ||
    as_pg "$PG_BIN/pg_ctl" -D "$1" -m immediate -w -t "$PGCTL_TIMEOUT" stop >/dev/null ||
    die "could not stop $1"
}

init_primary() {
  local p="$DIR/primary"
  rm -rf "$p" "$DIR/replica"
  log "initdb $p"
  as_pg "$PG_BIN/initdb" -D "$p" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$DIR/initdb.log" 2>&1 ||
    { log_tail "$DIR/initdb.log"; die "initdb failed"; }
  write_conf "$p" "$PRIMARY_PORT" primary
  cat >"$p/pg_hba.conf" <<'EOF'
# TYPE  DATABASE     USER        ADDRESS       METHOD
local   all          all                       trust
local   replication  all                       trust
host    replication  replicator  127.0.0.1/32  scram-sha-256
host    all          md5user     127.0.0.1/32  md5
host    all          pwuser      127.0.0.1/32  password
hostnossl all        tlsonly     127.0.0.1/32  reject
hostssl all          tlsonly     127.0.0.1/32  scram-sha-256
host    all          all         127.0.0.1/32  scram-sha-256
EOF
  start_server "$p" "$DIR/primary.log"
  log "creating roles and database"
  psql_local "$PRIMARY_PORT" -f - >/dev/null <<'EOF' || die "creating roles failed"
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'secret';
CREATE ROLE admin LOGIN SUPERUSER PASSWORD 'adminpass';
CREATE ROLE pwuser LOGIN PASSWORD 'pwpass';
CREATE ROLE tlsonly LOGIN PASSWORD 'tlspass';
CREATE ROLE replicator REPLICATION LOGIN PASSWORD 'replpass';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
RESET password_encryption;
CREATE DATABASE app OWNER app;
SELECT pg_reload_conf();
EOF
  as_pg touch "$p/.pgmux_initialized"
}

init_replica() {
  local r="$DIR/replica"
  rm -rf "$r"
  log "pg_basebackup into $r"
  as_pg env PGPASSWORD=replpass "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U replicator \
    -D "$r" -R -X stream -c fast --no-sync >"$DIR/basebackup.log" 2>&1 ||
    { log_tail "$DIR/basebackup.log"; die "pg_basebackup failed"; }
  # -R put primary_conninfo into postgresql.auto.conf (which would override
  # pgmux.conf); drop it, pgmux.conf carries it with the current primary port.
  as_pg sed -i '/^primary_conninfo/d' "$r/postgresql.auto.conf"
  rm -f "$r/.pgmux_initialized"
  as_pg touch "$r/.pgmux_replica"
}

# Bounded wait until the replica is in recovery and the primary sees it streaming.
wait_streaming() {
  local i rec="" st=""
  for ((i = 0; i < WAIT_SECS * 5; i++)); do
    rec=$(psql_local "$REPLICA_PORT" -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
    st=$(psql_local "$PRIMARY_PORT" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || true)
    [ "$rec" = t ] && [ "${st:-0}" -ge 1 ] && return 0
    sleep 0.2
  done
  log_tail "$DIR/replica.log"; log_tail "$DIR/primary.log"
  die "replica not streaming after ${WAIT_SECS}s (in_recovery='$rec', streaming senders='$st')"
}

write_env() {
  local env="PRIMARY_PORT=$PRIMARY_PORT
REPLICA_PORT=$REPLICA_PORT
PGMUX_CLUSTER_DIR=$DIR
PG_BIN=$PG_BIN"
  echo "$env" >"$DIR/cluster.env"
  echo "$env"
}

cmd_start() {
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd -P)
  # Sockets live in DIR: the path must fit sun_path (107 bytes incl. ".s.PGSQL.NNNNN.lock").
  [ ${#DIR} -le 85 ] || die "DIR path too long for a unix socket directory: $DIR"
  [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL binaries in $PG_BIN"
  prepare_owner
  if [ -f "$DIR/cluster.env" ] && [ -z "${PRIMARY_PORT:-}" ]; then
    PRIMARY_PORT=$(sed -n 's/^PRIMARY_PORT=//p' "$DIR/cluster.env")
    REPLICA_PORT=$(sed -n 's/^REPLICA_PORT=//p' "$DIR/cluster.env")
  fi
  [ -n "${PRIMARY_PORT:-}" ] || pick_ports
  if ! [[ "$PRIMARY_PORT" =~ ^[0-9]+$ && "$REPLICA_PORT" =~ ^[0-9]+$ ]] ||
    [ "$PRIMARY_PORT" = "$REPLICA_PORT" ]; then
    die "bad ports: '$PRIMARY_PORT' '$REPLICA_PORT'"
  fi
  log "dir=$DIR primary=$PRIMARY_PORT replica=$REPLICA_PORT"
  make_certs

  if [ -f "$DIR/primary/.pgmux_initialized" ]; then
    write_conf "$DIR/primary" "$PRIMARY_PORT" primary
    start_server "$DIR/primary" "$DIR/primary.log"
  else
    stop_server "$DIR/replica"; stop_server "$DIR/primary"
    init_primary
  fi
  [ -f "$DIR/replica/.pgmux_replica" ] || { stop_server "$DIR/replica"; init_replica; }
  write_conf "$DIR/replica" "$REPLICA_PORT" replica
  start_server "$DIR/replica" "$DIR/replica.log"
  wait_streaming
  log "cluster up"
  write_env
}

cmd_stop() {
  [ -d "$DIR" ] || { log "$DIR does not exist"; return 0; }
  DIR=$(cd "$DIR" && pwd -P)
  stop_server "$DIR/replica"
  stop_server "$DIR/primary"
}

cmd_server() { # primary|replica stop|start
  DIR=$(cd "$DIR" && pwd -P)
  PRIMARY_PORT=$(sed -n 's/^PRIMARY_PORT=//p' "$DIR/cluster.env")
  REPLICA_PORT=$(sed -n 's/^REPLICA_PORT=//p' "$DIR/cluster.env")
  if [ "$2" = stop ]; then
    stop_server "$DIR/$1"
  else
    start_server "$DIR/$1" "$DIR/$1.log"
    wait_streaming
  fi
}

cmd_status() {
  [ -d "$DIR" ] || die "$DIR does not exist"
  DIR=$(cd "$DIR" && pwd -P)
  local rc=0 s
  for s in primary replica; do
    if is_running "$DIR/$s"; then echo "$s: running"; else echo "$s: stopped"; rc=3; fi
  done
  return $rc
}

[ $# -ge 2 ] || usage
CMD=$1 DIR=$2 PRIMARY_PORT="" REPLICA_PORT=""   # ignore values inherited from the environment
[[ "$DIR" != *[[:space:]\'\"]* ]] || die "DIR must not contain whitespace or quotes"
case "$CMD" in
  start)
    if [ $# -eq 4 ]; then PRIMARY_PORT=$3 REPLICA_PORT=$4
    elif [ $# -ne 2 ]; then usage; fi
    cmd_start ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop ;;
  stop-replica | start-replica | stop-primary | start-primary)
    [ $# -eq 2 ] || usage
    cmd_server "${CMD#*-}" "${CMD%%-*}" ;;
  promote-replica)
    # Failover tests: the replica leaves recovery (a new timeline); the primary keeps running.
    [ $# -eq 2 ] || usage
    DIR=$(cd "$DIR" && pwd -P)
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/replica" -w -t "$PGCTL_TIMEOUT" promote >/dev/null ||
      die "could not promote $DIR/replica" ;;
  demote-primary)
    # Switchover tests: the primary restarts as a standby of nothing (standby.signal, no
    # primary_conninfo): it answers, read-only, on its old timeline, until destroyed.
    [ $# -eq 2 ] || usage
    DIR=$(cd "$DIR" && pwd -P)
    stop_server "$DIR/primary"
    as_pg touch "$DIR/primary/standby.signal"
    start_server "$DIR/primary" "$DIR/primary.log" ;;
  destroy)
    [ $# -eq 2 ] || usage
    # Guard against rm -rf of a wrong directory: it must look like one of ours.
    if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/cluster.env" ] && [ ! -d "$DIR/primary" ]; then
      die "$DIR does not look like a pg-cluster.sh directory; not removing it"
    fi
    cmd_stop; log "removing $DIR"; rm -rf "$DIR" ;;
  status) [ $# -eq 2 ] || usage; cmd_status ;;
  *) usage ;;
esac
