#!/usr/bin/env bash
# Installs the Debian packages pgmux needs to build, test and benchmark.
# Idempotent: only missing packages are installed; apt-get update runs only then.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config clang-format
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  libboost1.81-dev libpq-dev libssl-dev libtoml11-dev libspdlog-dev doctest-dev
  libsystemd-dev  # sd_notify (Type=notify, watchdog)
  postgresql-15 postgresql-client-15 postgresql-contrib
  libpg-query-dev libprotobuf-c-dev
  python3-psycopg pgbouncer
  iproute2  # ss: the keepalive timers of pgmux's sockets (integration tests)
  nftables  # a replica link cut by dropping its packets (fault tests)
  haproxy  # the load balancer in front of a fleet of pgmux instances (fleet tests)
  python3-yaml  # the Kubernetes manifests parsed (tests/package)
  prometheus-pgbouncer-exporter  # compatibility check of the admin console's SHOW output
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or sudo) to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged pgbouncer and postgresql services are not ours: keep them stopped.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now pgbouncer prometheus-pgbouncer-exporter haproxy >/dev/null 2>&1 || true
fi
service pgbouncer stop >/dev/null 2>&1 || true
service prometheus-pgbouncer-exporter stop >/dev/null 2>&1 || true
service haproxy stop >/dev/null 2>&1 || true
