// Whether a replica may serve reads, from the lag monitor's samples: pure, so the rules
// (staleness, promotion, limits with hysteresis) are tested without servers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "lag_monitor/lsn.hpp"

namespace pgmux::lag {

using Clock = std::chrono::steady_clock;

struct LagLimits {
  std::optional<std::int64_t> max_lag_ms;     // unset: time lag does not matter
  std::optional<std::int64_t> max_lag_bytes;  // unset: byte lag does not matter
  double readmit_ratio = 0.5;  // an excluded replica returns below this share of the limits
  std::chrono::milliseconds stale_after{1000};
};

// One reading of a replica, with the primary's position sampled around the same time.
struct ReplicaSample {
  Clock::time_point taken_at;
  bool in_recovery = true;
  Lsn receive_lsn = 0, replay_lsn = 0;
  // now() - pg_last_xact_replay_timestamp() on the replica, in ms; nullopt when it has
  // replayed no transaction since it started.
  std::optional<std::int64_t> since_last_replay_ms;
  std::optional<Lsn> primary_lsn;  // nullopt: the primary's position is not known
};

struct LagReading {
  std::int64_t bytes = -1;  // -1: unknown
  std::int64_t ms = -1;
};

// Lag in bytes = primary LSN − replay LSN. Lag in time = 0 when the replica has replayed all
// the primary has written, otherwise how long ago it last replayed a transaction.
[[nodiscard]] LagReading measure(const ReplicaSample& s);

enum class Exclusion : std::uint8_t {
  none,
  no_sample,        // nothing read from the replica yet (or its connection is down)
  stale,            // the last sample is older than lag_stale_after_ms
  promoted,         // pg_is_in_recovery() is false: not a replica any more
  primary_unknown,  // the primary's position is not known, so lag cannot be
  lag_bytes,        // over max_replica_lag_bytes
  lag_ms,           // over max_replica_lag_ms
};
[[nodiscard]] std::string_view to_string(Exclusion e);

// Eligibility with hysteresis: a replica is excluded as soon as it is over a limit (or its
// state is unknown) and readmitted only once below readmit_ratio of every limit, so a lag
// hovering near a limit does not flap.
class EligibilityTracker {
 public:
  // Re-evaluates with the latest sample (nullopt: none). True when eligibility changed.
  bool update(const std::optional<ReplicaSample>& latest, const LagLimits& limits,
              Clock::time_point now);
  [[nodiscard]] bool eligible() const { return reason_ == Exclusion::none; }
  [[nodiscard]] Exclusion reason() const { return reason_; }
  [[nodiscard]] LagReading reading() const { return reading_; }

 private:
  Exclusion reason_ = Exclusion::no_sample;
  LagReading reading_;
};

}  // namespace pgmux::lag
