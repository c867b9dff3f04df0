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
    -e "s/@LISTEN_PORT@/$port/" etc/pgmux-local.toml.in > "$work/pgmux.toml"
build/pooler/pgmux --config "$work/pgmux.toml" --check-config

cat <<MSG

  PostgreSQL primary on 127.0.0.1:$PRIMARY_PORT, streaming replica on 127.0.0.1:$REPLICA_PORT
  pgmux config: $work/pgmux.toml

  DATABASE_URL=postgresql://app:secret@127.0.0.1:$port/app
  read-only (replica): postgresql://app:secret@127.0.0.1:$port/app_ro
  admin console: psql "postgresql://admin:adminpass@127.0.0.1:$port/pgmux" -c 'SHOW POOLS'

  Ctrl-C stops pgmux and both servers.

MSG

cleanup() { scripts/pg-cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
build/pooler/pgmux --config "$work/pgmux.toml" &
pid=$!
wait "$pid" || true
wait "$pid" 2>/dev/null || true
