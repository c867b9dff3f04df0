#!/usr/bin/env bash
# The Debian package end to end, as an operator would use it: build it, look inside, install
# it with apt-get, verify the unit, run the unit's ExecStart as the pgmux user with the
# packaged config and connect to its admin console, then remove and purge it.
# Needs root (apt-get); run by ctest (label package).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
fail() { echo "check_package: FAIL: $*" >&2; exit 1; }
step() { echo "check_package: $*"; }

deb=$(scripts/package.sh | tail -1)
[ -f "$deb" ] || fail "no package built"
step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) kB)"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/pgmux ./etc/pgmux/pgmux.toml ./lib/systemd/system/pgmux.service \
  ./usr/share/man/man1/pgmux.1; do
  grep -q " $f\$" <<<"$contents" || fail "$f missing from the package"
done
dpkg-deb --info "$deb" conffiles | grep -qx /etc/pgmux/pgmux.toml || fail "config is not a conffile"
dpkg-deb --field "$deb" Depends | grep -q libssl || fail "Depends lacks the shared libraries"

dpkg -s pgmux >/dev/null 2>&1 && apt-get purge -y -qq pgmux >/dev/null
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "$deb" >/dev/null || fail "apt-get install"
step "installed: $(/usr/bin/pgmux --version)"
id pgmux >/dev/null || fail "no pgmux user after install"
[ "$(stat -c '%U:%G %a' /etc/pgmux/pgmux.toml)" = "root:pgmux 640" ] ||
  fail "config owner/mode: $(stat -c '%U:%G %a' /etc/pgmux/pgmux.toml)"
man -w pgmux >/dev/null 2>&1 || [ -f /usr/share/man/man1/pgmux.1 ] || fail "man page"
systemd-analyze verify /lib/systemd/system/pgmux.service || fail "systemd-analyze verify"
step "unit verified"

# The unit's own commands, as its User=, where systemd is not PID 1 to run them.
unit=/lib/systemd/system/pgmux.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
as_pgmux=(setpriv --reuid=pgmux --regid=pgmux --init-groups --)
"${as_pgmux[@]}" $exec_pre || fail "ExecStartPre: $exec_pre"
log=$(mktemp)
chmod 644 "$log"
"${as_pgmux[@]}" $exec_start >"$log" 2>&1 &
pid=$!
# On any failure: no pgmux left running, and the package (and its user) purged again.
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$log"; apt-get purge -y -qq pgmux >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do
  grep -q "pgmux listening" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; fail "pgmux exited"; }
  sleep 0.2
done
version=$(PGPASSWORD=adminpass psql "host=127.0.0.1 port=6432 user=admin dbname=pgmux sslmode=disable" \
  -Atc "SHOW VERSION") || { cat "$log"; fail "admin console"; }
user=$(ps -o user= -p $pid)
[ "$user" = pgmux ] || fail "pgmux runs as $user"
step "ExecStart as $user: SHOW VERSION = $version"
kill -TERM $pid
wait $pid || fail "pgmux did not exit cleanly on SIGTERM"
pid=  # reaped: the trap must not signal whatever gets the number next

apt-get remove -y -qq pgmux >/dev/null || fail "apt-get remove"
[ ! -e /usr/bin/pgmux ] || fail "binary left after remove"
[ -e /etc/pgmux/pgmux.toml ] || fail "remove must keep the config (conffile)"
apt-get purge -y -qq pgmux >/dev/null || fail "apt-get purge"
[ ! -e /etc/pgmux/pgmux.toml ] || fail "purge must remove the config"
! id pgmux >/dev/null 2>&1 || fail "purge must remove the pgmux user"
step "removed and purged"
echo "check_package: OK"
