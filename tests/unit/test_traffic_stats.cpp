// Counters behind SHOW STATS and /metrics: latency buckets, SQLSTATE classes, sums and deltas.
#include <doctest/doctest.h>

#include "pooler/pool/traffic_stats.hpp"

using namespace pgmux::pooler;

TEST_CASE("latency buckets are inclusive upper bounds, the last one +Inf") {
  CHECK(latency_bucket(0) == 0);
  CHECK(latency_bucket(100) == 0);
  CHECK(latency_bucket(101) == 1);
  CHECK(latency_bucket(1000) == 3);
  CHECK(latency_bucket(10'000'000) == kLatencyBuckets - 2);
  CHECK(latency_bucket(10'000'001) == kLatencyBuckets - 1);
}

TEST_CASE("SQLSTATE classes map to their slot, unknown ones to the last") {
  CHECK(kSqlstateClassCodes[sqlstate_class_index("22012")] == "22");
  CHECK(kSqlstateClassCodes[sqlstate_class_index("0A000")] == "0A");
  CHECK(kSqlstateClassCodes[sqlstate_class_index("XX000")] == "XX");
  CHECK(sqlstate_class_index("ZZ999") == kSqlstateClasses - 1);
  CHECK(sqlstate_class_index("") == kSqlstateClasses - 1);
}

TEST_CASE("a meter fills the histograms and counters that totals sum and subtract") {
  TrafficCounters slot;
  TrafficMeter m(&slot);
  m.request_sent(true);
  m.ready_for_query('T', true);  // a query inside a transaction
  m.request_sent(true);
  m.ready_for_query('I', true);  // its end
  m.error("42P01");
  m.client_parse();
  m.bind();
  m.prepared_hit();
  m.pinned(1);
  const TrafficTotals t = slot.load();
  CHECK(t.query_count == 2);
  CHECK(t.xact_count == 1);
  std::uint64_t queries = 0, xacts = 0;
  for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
    queries += t.query_hist[i];
    xacts += t.xact_hist[i];
  }
  CHECK(queries == 2);
  CHECK(xacts == 1);
  CHECK(t.errors[sqlstate_class_index("42P01")] == 1);
  CHECK(t.client_parse_count == 1);
  CHECK(t.bind_count == 1);
  CHECK(t.prepared_hits == 1);
  CHECK(t.pins[1] == 1);

  TrafficTotals sum = t;
  sum += t;
  CHECK(sum.query_count == 4);
  CHECK(sum.errors[sqlstate_class_index("42P01")] == 2);
  const TrafficTotals d = sum.minus(t);
  CHECK(d.query_count == 2);
  CHECK(d.bind_count == 1);
  // Every field takes part: histogram buckets, error classes and pins too.
  std::uint64_t delta_timed = 0;
  for (auto n : d.query_hist) delta_timed += n;
  CHECK(delta_timed == 2);
  CHECK(d.errors[sqlstate_class_index("42P01")] == 1);
  CHECK(d.pins[1] == 1);
  // A meter without counters (the admin console's) counts nothing and does not crash.
  TrafficMeter none;
  none.error("22012");
  none.bind();
}

TEST_CASE("an answer with no request started is counted but not timed") {
  TrafficCounters slot;
  TrafficMeter m(&slot);
  m.ready_for_query('I', true);  // e.g. pgmux's own ReadyForQuery: no start time to measure from
  TrafficTotals t = slot.load();
  CHECK(t.query_count == 1);
  CHECK(t.query_time_us == 0);
  std::uint64_t timed = 0;
  for (auto n : t.query_hist) timed += n;
  CHECK(timed == 0);
  m.request_sent(true);
  m.ready_for_query('I', true);
  t = slot.load();
  CHECK(t.query_count == 2);
  timed = 0;
  for (auto n : t.query_hist) timed += n;
  CHECK(timed == 1);
}
