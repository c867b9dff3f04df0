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
  std::atomic<std::uint64_t> generation{0};  // bumped after every round of samples

 private:
  int count_;
  std::unique_ptr<ReplicaLagState[]> replicas_;
};

}  // namespace pgmux::lag
