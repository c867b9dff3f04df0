// What the lag monitor knows, published for the workers: written by the monitor's coroutines,
// read lock-free on the routing path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "lag_monitor/lsn.hpp"
#include "lag_monitor/replica_health.hpp"

namespace pgmux::lag {

struct ReplicaLagState {
  std::atomic<bool> eligible{false};
  std::atomic<Exclusion> reason{Exclusion::no_sample};
  std::atomic<Lsn> replay_lsn{0};
  std::atomic<std::int64_t> lag_bytes{-1}, lag_ms{-1};
  std::atomic<std::int64_t> sampled_at_ns{0};  // steady clock; 0: never
  std::atomic<std::uint64_t> samples{0};       // queries run on this server
  // Out of recovery (promoted): the timeline of its current WAL (0: in recovery, unknown).
  std::atomic<std::uint32_t> timeline{0};
};

class LagState {
 public:
  explicit LagState(int replicas)
      : count_(replicas), replicas_(std::make_unique<ReplicaLagState[]>(replicas)) {}

  [[nodiscard]] int replica_count() const { return count_; }
  ReplicaLagState& replica(int i) { return replicas_[i]; }
  [[nodiscard]] const ReplicaLagState& replica(int i) const { return replicas_[i]; }

  std::atomic<Lsn> primary_lsn{0};
  std::atomic<std::int64_t> primary_sampled_at_ns{0};  // steady clock; 0: never
  std::atomic<std::uint64_t> primary_samples{0};
  // What the server writes go to said of itself: in recovery (demoted: fenced), and the
  // timeline of its WAL.
  std::atomic<bool> primary_in_recovery{false};
  std::atomic<std::int64_t> primary_answered_at_ns{0};  // its last answer, in recovery or not
  std::atomic<std::uint32_t> primary_timeline{0};
  std::atomic<std::uint64_t> generation{0};  // bumped after every round of samples
  // lag_stale_after_ms, set by the monitor when it starts; 0: samples never go stale.
  std::atomic<std::int64_t> stale_after_ns{0};

  // The replica's last sample is older than lag_stale_after_ms (or there is none). Checked on
  // every routing decision, so a replica whose monitor query hangs (a frozen server, a cut
  // link) is out as soon as its sample is too old, not when that query gives up.
  [[nodiscard]] bool stale(const ReplicaLagState& r, std::int64_t now_ns) const {
    const std::int64_t limit = stale_after_ns.load(std::memory_order_relaxed);
    const std::int64_t at = r.sampled_at_ns.load(std::memory_order_relaxed);
    return limit > 0 && (at == 0 || now_ns - at > limit);
  }

 private:
  int count_;
  std::unique_ptr<ReplicaLagState[]> replicas_;
};

}  // namespace pgmux::lag
