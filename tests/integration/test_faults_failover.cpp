// Following a failover (roles = "auto"): the replica of a cluster of the test's own is
// promoted under a write load while the old primary keeps running (the worst case: two
// servers that both accept writes). Once the lag monitor sees the promoted replica on a newer
// timeline, every write goes to it and none to the old primary. (Its own cluster: promoting
// the run's replica would leave the other tests without one.)
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "pg_cluster.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "write_load.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

TEST_CASE("fault: a promoted replica takes the writes; the old primary gets none after") {
  PgCluster own(test_env().unique_stem("failover-cluster"));
  {
    PgConn p = direct_server(own.primary_port());
    fresh_write_table(p, "failover_items");
  }
  PgmuxProcess px(test_env(), {.name = "failover",
                               .pool_size = 4,
                               .query_wait_timeout_ms = 10000,
                               .mode = "transaction",
                               .routing_toml = "read_write_split = \"on\"\n"
                                               "lag_check_interval_ms = 100\n"
                                               "lag_stale_after_ms = 500\n",
                               .database_toml = "roles = \"auto\"",
                               .cluster = &own});
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));

  // Writers insert one row per transaction and note the port of the server that took it.
  constexpr int kWriters = 4;
  const std::string old_port = std::to_string(own.primary_port());
  const std::string new_port = std::to_string(own.replica_port());
  WriteLoad load(px, kWriters, [](int i) {
    return "INSERT INTO failover_items (writer) VALUES (" + std::to_string(i) +
           ") RETURNING inet_server_port()";
  });
  REQUIRE(wait_until([&] { return load.count(old_port) > 200; }, milliseconds(10000)));
  {
    // The replica follows: the table and rows are there before it is promoted.
    PgConn replica = direct_server(own.replica_port());
    REQUIRE_MESSAGE(replica.ok(), replica.error());
    CHECK(wait_until(
        [&] {
          const PgResult r = replica.exec("SELECT count(*) FROM failover_items");
          return r.ok() && std::stoi(r.value(0, 0)) > 100;
        },
        milliseconds(10000)));
  }
  const std::string before = px.resources();
  own.promote_replica();
  const auto promoted = Clock::now();
  CHECK(wait_until([&] { return load.count(new_port) > 0; }, milliseconds(10000)));
  MESSAGE("failover: the first write on the promoted replica came ", seconds_since(promoted),
          " s after pg_ctl promote returned");
  const int at_switch = load.count(new_port);
  CHECK(wait_until([&] { return load.count(new_port) > at_switch + 200; }, milliseconds(10000)));
  load.stop();

  int failed = 0;
  for (const auto& [sqlstate, n] : load.failures()) {
    MESSAGE("failover: ", n, " writes failed with ", sqlstate);
    failed += n;
  }
  MESSAGE("failover: ", load.count(old_port), " writes on the old primary, ", load.count(new_port),
          " on the promoted replica; the longest took ", load.longest(), " s");
  MESSAGE("failover: before ", before, "; after ", px.resources());
  CHECK(failed <= kWriters);
  // Each writer's writes: the old primary's, then only the promoted replica's.
  for (int i = 0; i < kWriters; ++i) {
    const auto& seq = load.answers(i);
    const auto first_new = std::find(seq.begin(), seq.end(), new_port);
    CHECK_MESSAGE(std::count(first_new, seq.end(), old_port) == 0, "writer ", i,
                  " wrote to the old primary after the failover");
  }
  CHECK(px.wait_for_log("was promoted (timeline 2)", milliseconds(1000)));
  // The rows are where the writers were told they are.
  PgConn promoted_server = direct_server(own.replica_port());
  REQUIRE_MESSAGE(promoted_server.ok(), promoted_server.error());
  CHECK(std::stoi(promoted_server.query_value("SELECT count(*) FROM failover_items")) >=
        load.count(new_port));
}
