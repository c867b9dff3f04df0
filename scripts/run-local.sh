#!/usr/bin/env bash
# Runs pgmux on its embedded default: installs what is missing, builds, starts a local
# PostgreSQL 15 primary + streaming replica under .work/local, and runs pgmux in front of them
# in the foreground. Ctrl-C stops pgmux and the two servers.
#   scripts/run-local.sh          start (or restart) everything
#   scripts/run-local.sh stop     stop the servers left running by an earlier run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="${PGMUX_WORKDIR:-$root/.work/local}"
port="${PGMUX_PORT:-6432}"
metrics_port="${PGMUX_METRICS_PORT:-9930}"

if [ "${1:-}" = "stop" ]; then
  scripts/pg-cluster.sh stop "$work/cluster"
  exit 0
fi

scripts/install-deps.sh
scripts/build.sh --target pgmux
mkdir -p "$work"
scripts/pg-cluster.sh start "$work/cluster" >/dev/null
# shellcheck disable=SC1091
source "$work/cluster/cluster.env"

sed -e "s/@PRIMARY_PORT@/$PRIMARY_PORT/g" -e "s/@REPLICA_PORT@/$REPLICA_PORT/g" \
    -e "s/@LISTEN_PORT@/$port/" -e "s/@METRICS_PORT@/$metrics_port/" \
    etc/pgmux-local.toml.in > "$work/pgmux.toml"
build/pooler/pgmux --config "$work/pgmux.toml" --check-config

cat <<MSG

  PostgreSQL primary on 127.0.0.1:$PRIMARY_PORT, streaming replica on 127.0.0.1:$REPLICA_PORT
  pgmux config: $work/pgmux.toml

  DATABASE_URL=postgresql://app:secret@127.0.0.1:$port/app
  read-only (replica): postgresql://app:secret@127.0.0.1:$port/app_ro
  admin console: psql "postgresql://admin:adminpass@127.0.0.1:$port/pgmux" -c 'SHOW POOLS'
  metrics: curl http://127.0.0.1:$metrics_port/metrics

  Ctrl-C stops pgmux and both servers.

MSG

# One line showing what pgmux is for: a read answered by the replica, a write by the primary.
# The first reads may still go to the primary (the lag monitor has not sampled the replica
# yet), so the read is retried for a few seconds.
server_role() { [ "$1" = "$REPLICA_PORT" ] && echo replica || echo primary; }
show_routing() {
  local url=$1 read_port="" write_port="" i
  for i in $(seq 1 50); do
    read_port=$(psql "$url" -XAtc 'SELECT inet_server_port()' 2>/dev/null) || read_port=""
    [ "$read_port" = "$REPLICA_PORT" ] && break
    sleep 0.2
  done
  # txid_current() is volatile and assigns a transaction id: a write, so it goes to the primary.
  write_port=$(psql "$url" -XAtc 'SELECT inet_server_port() FROM txid_current()') || return 1
  echo "  routing: a read ran on the $(server_role "$read_port") (port $read_port)," \
    "a write on the $(server_role "$write_port") (port $write_port)"
}

cleanup() { scripts/pg-cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
build/pooler/pgmux --config "$work/pgmux.toml" &
pid=$!
show_routing "postgresql://app:secret@127.0.0.1:$port/app" || true
wait "$pid" || true
wait "$pid" 2>/dev/null || true
