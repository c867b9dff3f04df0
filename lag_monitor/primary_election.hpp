// Following a failover (roles = "auto"): which server should take the writes, from what the
// lag monitor last saw of each. A replica that left recovery (it was promoted) on a newer
// timeline than the server writes go to now is the primary from then on; so is one that left
// recovery while the current primary is gone or back in recovery itself. A server that is in
// recovery never takes writes. Pure: unit-tested without servers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace pgmux::lag {

// One server as its last sample saw it.
struct ServerRole {
  bool fresh = false;          // sampled within lag_stale_after_ms
  bool in_recovery = true;     // pg_is_in_recovery()
  std::uint32_t timeline = 0;  // of its current WAL (0: in recovery, or unknown)
};

// The replica (index into `replicas`) that should take the writes instead of `current`, the
// server that takes them now; `current_replica` is its index when it is itself one of the
// listed replicas (after an earlier failover), else -1. nullopt: writes stay where they are.
[[nodiscard]] std::optional<int> promoted_replica(const ServerRole& current, int current_replica,
                                                  std::span<const ServerRole> replicas);

}  // namespace pgmux::lag
