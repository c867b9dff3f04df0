// Replica eligibility from lag samples: staleness, promotion, limits and hysteresis; the
// sample's age checked on every routing decision.
#include <doctest/doctest.h>

#include "lag_monitor/lag_state.hpp"
#include "lag_monitor/replica_health.hpp"
#include "router/database_routing.hpp"

using namespace pgmux::lag;
using std::chrono::milliseconds;

namespace {

ReplicaSample sample(Clock::time_point at, Lsn primary, Lsn replay,
                     std::optional<std::int64_t> since_replay_ms = 0) {
  return {.taken_at = at,
          .in_recovery = true,
          .receive_lsn = replay,
          .replay_lsn = replay,
          .since_last_replay_ms = since_replay_ms,
          .primary_lsn = primary};
}

}  // namespace

TEST_CASE("measure: bytes behind the primary, and time only while behind") {
  const auto now = Clock::now();
  CHECK(measure(sample(now, 1000, 1000, 5000)).bytes == 0);
  CHECK(measure(sample(now, 1000, 1000, 5000)).ms == 0);  // caught up: no time lag
  CHECK(measure(sample(now, 1000, 400, 250)).bytes == 600);
  CHECK(measure(sample(now, 1000, 400, 250)).ms == 250);
  CHECK(measure(sample(now, 1000, 400, std::nullopt)).ms == -1);  // unknown
  CHECK(measure(sample(now, 400, 1000, 10)).bytes == 0);  // primary sampled before the replica
  ReplicaSample no_primary = sample(now, 0, 0);
  no_primary.primary_lsn.reset();
  CHECK(measure(no_primary).bytes == -1);
}

TEST_CASE("eligibility: unknown, stale and promoted replicas are excluded") {
  const auto now = Clock::now();
  const LagLimits limits{.max_lag_bytes = 1000, .stale_after = milliseconds(500)};
  EligibilityTracker t;
  CHECK_FALSE(t.eligible());
  CHECK(t.reason() == Exclusion::no_sample);
  CHECK(t.update(sample(now, 100, 100), limits, now));  // changed: now eligible
  CHECK(t.eligible());
  CHECK_FALSE(t.update(sample(now, 100, 100), limits, now));  // no change
  CHECK(t.update(sample(now - milliseconds(600), 100, 100), limits, now));
  CHECK(t.reason() == Exclusion::stale);
  ReplicaSample promoted = sample(now, 100, 100);
  promoted.in_recovery = false;
  t.update(promoted, limits, now);
  CHECK(t.reason() == Exclusion::promoted);
  ReplicaSample blind = sample(now, 0, 100);
  blind.primary_lsn.reset();
  t.update(blind, limits, now);
  CHECK(t.reason() == Exclusion::primary_unknown);
  t.update(std::nullopt, limits, now);
  CHECK(t.reason() == Exclusion::no_sample);
  // Without limits the primary's position is not needed.
  EligibilityTracker free;
  free.update(blind, LagLimits{}, now);
  CHECK(free.eligible());
}

TEST_CASE("eligibility: byte and time limits with hysteresis, no flapping near a limit") {
  const auto now = Clock::now();
  const LagLimits limits{.max_lag_ms = 1000, .max_lag_bytes = 10000, .readmit_ratio = 0.5};
  EligibilityTracker t;
  t.update(sample(now, 10000, 10000), limits, now);
  REQUIRE(t.eligible());
  t.update(sample(now, 19000, 10000, 100), limits, now);  // 9000 bytes: under the limit
  CHECK(t.eligible());
  t.update(sample(now, 20001, 10000, 100), limits, now);  // 10001 bytes: over
  CHECK(t.reason() == Exclusion::lag_bytes);
  // Hovering just under the limit does not readmit it: it must drop below half.
  int changes = 0;
  for (int i = 0; i < 20; ++i) {
    const Lsn behind = i % 2 == 0 ? 9900 : 10100;
    changes += t.update(sample(now, 100000 + behind, 100000, 100), limits, now) ? 1 : 0;
  }
  CHECK(changes == 0);
  CHECK_FALSE(t.eligible());
  CHECK(t.update(sample(now, 104999, 100000, 100), limits, now));  // 4999 < 5000: back
  CHECK(t.eligible());
  // Time lag.
  t.update(sample(now, 200, 100, 1500), limits, now);
  CHECK(t.reason() == Exclusion::lag_ms);
  t.update(sample(now, 200, 100, 700), limits, now);  // 700 > 500: still out
  CHECK(t.reason() == Exclusion::lag_ms);
  t.update(sample(now, 200, 100, 400), limits, now);
  CHECK(t.eligible());
  t.update(sample(now, 200, 100, std::nullopt), limits, now);  // behind, time unknown
  CHECK(t.reason() == Exclusion::lag_ms);
}

TEST_CASE("routing: a replica whose sample aged past lag_stale_after_ms is out at once") {
  // The monitor's query to a frozen replica may hang; the published verdict still says
  // eligible, but the sample's age alone must keep reads away.
  pgmux::router::DatabaseRouting routing("app", {pgmux::router::Endpoint{.host = "r", .port = 1}},
                                         {});
  routing.set_monitored([] {});
  LagState& lag = *routing.lag();
  ReplicaLagState& r = lag.replica(0);
  const auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
  };
  r.eligible = true;
  r.replay_lsn = 100;
  r.sampled_at_ns = now_ns();
  lag.stale_after_ns = std::chrono::nanoseconds(milliseconds(500)).count();
  CHECK(routing.eligible(0));
  CHECK(routing.eligible(0, 100));
  CHECK_FALSE(routing.eligible(0, 101));  // not yet past the client's write
  CHECK_FALSE(lag.stale(r, now_ns()));

  r.sampled_at_ns = now_ns() - std::chrono::nanoseconds(milliseconds(600)).count();
  CHECK(lag.stale(r, now_ns()));
  CHECK_FALSE(routing.eligible(0));
  CHECK_FALSE(routing.any_eligible());

  // A fresh sample readmits it; a monitor that never started sets no limit.
  r.sampled_at_ns = now_ns();
  CHECK(routing.eligible(0));
  lag.stale_after_ns = 0;
  r.sampled_at_ns = now_ns() - std::chrono::nanoseconds(std::chrono::hours(1)).count();
  CHECK(routing.eligible(0));
}
