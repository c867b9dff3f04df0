// Following a failover (roles = "auto"): the replica of a cluster of the test's own is
// promoted under a write load while the old primary keeps running (the worst case: two
// servers that both accept writes). Once the lag monitor sees the promoted replica on a newer
// timeline, every write goes to it and none to the old primary. A switchover (the primary
// restarted as a standby, then the replica promoted) fails no write with 25006: writes wait
// while the primary answers in recovery. (Clusters of their own: promoting the run's replica
// would leave the other tests without one.)
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pg_cluster.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "write_load.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

// A cluster of the test's own with an empty table `table`, and pgmux in front of it in
// transaction mode following promotions (roles = "auto"), its replica taking reads.
struct FailoverRig {
  static constexpr int kWriters = 4;

  FailoverRig(const std::string& name, const std::string& table, const std::string& pool_toml)
      : table(table),
        cluster(test_env().unique_stem(name + "-cluster")),
        px(test_env(), {.name = name,
                        .pool_size = 4,
                        .query_wait_timeout_ms = 20000,
                        .mode = "transaction",
                        .pool_toml = pool_toml,
                        .routing_toml = "read_write_split = \"on\"\n"
                                        "lag_check_interval_ms = 100\n"
                                        "lag_stale_after_ms = 500\n",
                        .database_toml = "roles = \"auto\"",
                        .cluster = &cluster}) {
    PgConn p = direct_server(cluster.primary_port());
    fresh_write_table(p, table);
    REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  }
  // kWriters writers, each inserting one row per transaction into `table` and noting
  // the port of the server that took it; returns once 200 went to the primary.
  WriteLoad& start_writes() {
    load = std::make_unique<WriteLoad>(px, kWriters, [this](int i) {
      return "INSERT INTO " + table + " (writer) VALUES (" + std::to_string(i) +
             ") RETURNING inet_server_port()";
    });
    REQUIRE(wait_until([&] { return load->count(old_port()) > 200; }, milliseconds(10000)));
    return *load;
  }
  [[nodiscard]] std::string old_port() const { return std::to_string(cluster.primary_port()); }
  [[nodiscard]] std::string new_port() const { return std::to_string(cluster.replica_port()); }

  // Promotes the replica under `load`, waits for 200 writes on it, stops the load and prints
  // what it measured; returns the number of failed writes.
  int promote_and_count(WriteLoad& load, const std::string& what, const std::string& before) {
    cluster.promote_replica();
    const auto promoted = Clock::now();
    CHECK(wait_until([&] { return load.count(new_port()) > 0; }, milliseconds(10000)));
    MESSAGE(what, ": the first write on the promoted replica came ", seconds_since(promoted),
            " s after pg_ctl promote returned");
    const int at_switch = load.count(new_port());
    CHECK(
        wait_until([&] { return load.count(new_port()) > at_switch + 200; }, milliseconds(10000)));
    load.stop();
    int failed = 0;
    for (const auto& [sqlstate, n] : load.failures()) {
      MESSAGE(what, ": ", n, " writes failed with ", sqlstate);
      failed += n;
    }
    MESSAGE(what, ": ", load.count(old_port()), " writes on the old primary, ",
            load.count(new_port()), " on the promoted replica; the longest took ", load.longest(),
            " s");
    MESSAGE(what, ": before ", before, "; after ", px.resources());
    return failed;
  }

  const std::string table;
  PgCluster cluster;
  PgmuxProcess px;
  std::unique_ptr<WriteLoad> load;  // stopped before px goes
};

}  // namespace

TEST_CASE("fault: a promoted replica takes the writes; the old primary gets none after") {
  FailoverRig rig("failover", "failover_items", "");
  PgCluster& own = rig.cluster;
  PgmuxProcess& px = rig.px;
  INFO(px.log_tail());
  WriteLoad& load = rig.start_writes();
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
  const int failed = rig.promote_and_count(load, "failover", before);
  CHECK(failed <= FailoverRig::kWriters);
  // Each writer's writes: the old primary's, then only the promoted replica's.
  for (int i = 0; i < FailoverRig::kWriters; ++i) {
    const auto& seq = load.answers(i);
    const auto first_new = std::find(seq.begin(), seq.end(), rig.new_port());
    CHECK_MESSAGE(std::count(first_new, seq.end(), rig.old_port()) == 0, "writer ", i,
                  " wrote to the old primary after the failover");
  }
  CHECK(px.wait_for_log("was promoted (timeline 2)", milliseconds(1000)));
  // The rows are where the writers were told they are.
  PgConn promoted_server = direct_server(own.replica_port());
  REQUIRE_MESSAGE(promoted_server.ok(), promoted_server.error());
  CHECK(std::stoi(promoted_server.query_value("SELECT count(*) FROM failover_items")) >=
        load.count(rig.new_port()));
  // A RELOAD of the file, which still names the old primary, keeps the promoted one.
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  const PgResult reloaded = admin.exec("RELOAD");
  CHECK_MESSAGE(reloaded.status() == PGRES_COMMAND_OK, reloaded.describe());
  CHECK(px.wait_for_log("stays the primary (promoted at run time)", milliseconds(1000)));
  PgConn writer(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(writer.ok(), writer.error());
  CHECK(writer.query_value("INSERT INTO failover_items (writer) VALUES (-1) RETURNING "
                           "inet_server_port()") == rig.new_port());
}

TEST_CASE("fault: writes wait while the primary is demoted, then go to the promoted replica") {
  // A switchover as an operator runs one: the primary is restarted as a standby first (it
  // answers, read-only), then the replica is promoted. In between, no write may fail with
  // 25006: they wait (primary_wait_ms) for the promotion.
  FailoverRig rig("switchover", "switchover_items", "primary_wait_ms = 15000");
  PgCluster& own = rig.cluster;
  PgmuxProcess& px = rig.px;
  INFO(px.log_tail());
  WriteLoad& load = rig.start_writes();
  const std::string before = px.resources();
  const auto demoting = Clock::now();
  own.demote_primary();
  CHECK(px.wait_for_log("the primary is in recovery", milliseconds(5000)));
  MESSAGE("switchover: the demoted primary was fenced ", seconds_since(demoting),
          " s after its restart as a standby began");
  const int held_at = load.committed();
  std::this_thread::sleep_for(milliseconds(1000));
  CHECK(load.committed() == held_at);  // fenced: nothing can commit on a standby
  const int failed = rig.promote_and_count(load, "switchover", before);
  // Only those in flight when the primary stopped; none refused by the standby it became.
  CHECK(failed <= FailoverRig::kWriters);
  CHECK(load.failures().count("25006") == 0);
  CHECK(load.failures().count("(none)") == 0);
  CHECK(load.committed() == load.count(rig.old_port()) + load.count(rig.new_port()));
}
