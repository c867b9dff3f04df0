#include "lag_monitor/primary_election.hpp"

namespace pgmux::lag {

std::optional<int> promoted_replica(const ServerRole& current, int current_replica,
                                    std::span<const ServerRole> replicas) {
  std::optional<int> best;
  for (int i = 0; i < static_cast<int>(replicas.size()); ++i) {
    const ServerRole& r = replicas[static_cast<std::size_t>(i)];
    if (i == current_replica || !r.fresh || r.in_recovery || r.timeline == 0) continue;
    if (!best || r.timeline > replicas[static_cast<std::size_t>(*best)].timeline) best = i;
  }
  if (!best) return std::nullopt;
  // The current primary, while it answers as a primary, keeps the writes against a server on
  // its own timeline or an older one (two servers out of recovery on one timeline: the
  // operator's split, not a promotion pgmux can order).
  const bool current_serves = current.fresh && !current.in_recovery;
  if (current_serves && replicas[static_cast<std::size_t>(*best)].timeline <= current.timeline) {
    return std::nullopt;
  }
  return best;
}

}  // namespace pgmux::lag
