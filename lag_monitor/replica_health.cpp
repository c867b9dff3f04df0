// Replica eligibility rules.
#include "lag_monitor/replica_health.hpp"

namespace pgmux::lag {

LagReading measure(const ReplicaSample& s) {
  LagReading r;
  if (!s.primary_lsn) return r;
  r.bytes = static_cast<std::int64_t>(lag_bytes(*s.primary_lsn, s.replay_lsn));
  if (r.bytes == 0) {
    r.ms = 0;
  } else if (s.since_last_replay_ms) {
    r.ms = std::max<std::int64_t>(0, *s.since_last_replay_ms);
  }
  return r;
}

std::string_view to_string(Exclusion e) {
  switch (e) {
    case Exclusion::none:
      return "eligible";
    case Exclusion::no_sample:
      return "no sample";
    case Exclusion::stale:
      return "sample stale";
    case Exclusion::promoted:
      return "not in recovery (promoted)";
    case Exclusion::primary_unknown:
      return "primary position unknown";
    case Exclusion::lag_bytes:
      return "over max_replica_lag_bytes";
    case Exclusion::lag_ms:
      return "over max_replica_lag_ms";
  }
  return "unknown";
}

bool EligibilityTracker::update(const std::optional<ReplicaSample>& latest, const LagLimits& limits,
                                Clock::time_point now) {
  const Exclusion before = reason_;
  auto set = [&](Exclusion e) {
    reason_ = e;
    return reason_ != before && (reason_ == Exclusion::none || before == Exclusion::none);
  };
  if (!latest) {
    reading_ = {};
    return set(Exclusion::no_sample);
  }
  reading_ = measure(*latest);
  if (now - latest->taken_at > limits.stale_after) return set(Exclusion::stale);
  if (!latest->in_recovery) return set(Exclusion::promoted);
  const bool limited = limits.max_lag_bytes || limits.max_lag_ms;
  if (limited && !latest->primary_lsn) return set(Exclusion::primary_unknown);
  // Excluded replicas come back only below readmit_ratio of the limits.
  const double scale = before == Exclusion::none ? 1.0 : limits.readmit_ratio;
  if (limits.max_lag_bytes &&
      static_cast<double>(reading_.bytes) > scale * static_cast<double>(*limits.max_lag_bytes)) {
    return set(Exclusion::lag_bytes);
  }
  if (limits.max_lag_ms &&
      (reading_.ms < 0 ||
       static_cast<double>(reading_.ms) > scale * static_cast<double>(*limits.max_lag_ms))) {
    return set(Exclusion::lag_ms);
  }
  return set(Exclusion::none);
}

}  // namespace pgmux::lag
