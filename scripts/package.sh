#!/usr/bin/env bash
# Builds the Debian package: build/pgmux_<version>_amd64.deb (binary, /etc/pgmux/pgmux.toml as
# a conffile, the systemd unit, the man page, a postinst that creates the pgmux user).
# Prints the package's path on its last line.
#   scripts/package.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/build.sh --target pgmux >/dev/null
cd build
cpack -G DEB >/dev/null
deb=$(ls -t "$root"/build/pgmux_*_amd64.deb | head -1)
echo "$deb"
