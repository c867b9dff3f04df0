#!/usr/bin/env bash
# The one-way dependencies between the project's folders, checked on every build (CMake runs
# this before compiling pgmux_core): a file may include headers of its own folder and of the
# folders listed for it, and nothing else of the project. Exit 1 names each forbidden include.
set -euo pipefail
cd "$(dirname "$0")/.."

# folder: folders it may include (besides itself). Lower layers first.
declare -A may=(
  [protocol]=""
  [lag_monitor]="protocol"
  [router]="protocol lag_monitor"
  [pooler/net]="protocol"
  [pooler/config]="protocol router pooler/net"
  # A server connection implements the engine's port (held_server.hpp) and holds its
  # vocabulary (statements, parameters); nothing else of session/.
  [pooler/pool]="protocol router pooler/net pooler/config pooler/session/held_server.hpp
                 pooler/session/parameter_map.hpp pooler/session/prepared_statements.hpp
                 pooler/session/statement_effects.hpp"
  [pooler/session]="protocol router lag_monitor pooler/net pooler/config pooler/pool pooler
                    pooler/admin/admin_console.hpp"
  [pooler/admin]="protocol router lag_monitor pooler/net pooler/config pooler/pool
                  pooler/session pooler"
  [pooler]="protocol router lag_monitor pooler/net pooler/config pooler/pool pooler/session
            pooler/admin"
)

status=0
for folder in "${!may[@]}"; do
  allowed=" $folder ${may[$folder]//$'\n'/ } "
  for file in "$folder"/*.cpp "$folder"/*.hpp; do
    [ -e "$file" ] || continue
    while IFS=: read -r line header; do
      dir="${header%/*}"
      case "$allowed" in *" $dir "* | *" $header "*) continue ;; esac
      printf '%s:%s: includes "%s"; %s may include only %s\n' "$file" "$line" "$header" \
        "$folder" "$(echo ${may[$folder]:-nothing else})"
      status=1
    done < <(grep -noE '^#include "(protocol|router|lag_monitor|pooler)/[a-z_/]+\.hpp"' "$file" |
      sed -E 's/^([0-9]+):#include "(.*)"$/\1:\2/')
  done
done
[ "$status" -eq 0 ] || echo "check-layers: forbidden includes (see scripts/check-layers.sh)" >&2
exit "$status"
