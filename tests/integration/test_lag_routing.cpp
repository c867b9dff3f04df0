// Lag-bounded reads and read-your-writes against the real primary + replica: replay is paused
// on the replica (pg_wal_replay_pause) to make it lag by a controlled amount.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"

using namespace pgmux::it;

namespace {

PgmuxOptions lag_routed(std::string name, std::string routing_toml) {
  return {.name = std::move(name),
          .pool_size = 4,
          .query_wait_timeout_ms = 10000,
          .mode = "transaction",
          .routing_toml =
              "read_write_split = \"on\"\nreplica_ban_ms = 1000\n" + std::move(routing_toml)};
}

void create_lag_table() {
  empty_table("lag_items", "id bigint PRIMARY KEY, v text");
}

}  // namespace

TEST_CASE("lag: a replica over max_replica_lag_bytes is excluded and readmitted once caught up") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("lag-bytes",
                                         "read_your_writes = \"off\"\n"
                                         "max_replica_lag_bytes = 1000000\n"
                                         "lag_check_interval_ms = 100\n"
                                         "lag_stale_after_ms = 1000\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(where(c) == "replica");
  {
    ReplayPause pause;
    PgConn p = direct_primary();
    // About 4 MB of WAL the replica does not replay.
    p.run("INSERT INTO lag_items SELECT g, repeat('x', 1000) FROM generate_series(1, 4000) g");
    const auto written = Clock::now();
    CHECK(wait_until([&] { return where(c) == "primary"; }, milliseconds(2000)));
    const double excluded_after = seconds_since(written);
    MESSAGE("reads left the lagging replica ", excluded_after, " s after the write");
    CHECK(excluded_after < 1.2);  // one interval + the stale window at most
    CHECK(px.wait_for_log("over max_replica_lag_bytes", milliseconds(1000)));
    for (int i = 0; i < 10; ++i) CHECK(where(c) == "primary");
    // The admin console shows why.
    const auto replicas = console_rows(px, "SHOW REPLICAS");
    REQUIRE(replicas.size() == 1);
    CHECK(replicas[0].at("eligible") == "f");
    CHECK(replicas[0].at("reason") == "over max_replica_lag_bytes");
    CHECK(std::stoll(replicas[0].at("lag_bytes")) > 1000000);
    CHECK(std::stoll(replicas[0].at("sample_age_ms")) < 1000);
    CHECK(replicas[0].at("port") == std::to_string(test_env().cluster().replica_port()));
    pause.resume();
    const auto resumed = Clock::now();
    CHECK(wait_until([&] { return where(c) == "replica"; }, milliseconds(5000)));
    MESSAGE("reads returned to the replica ", seconds_since(resumed),
            " s after replay resumed (catch-up + readmission)");
  }
  const auto after = console_rows(px, "SHOW REPLICAS");
  REQUIRE(after.size() == 1);
  CHECK(after[0].at("eligible") == "t");
  CHECK(after[0].at("reason") == "eligible");
  CHECK(std::stoll(after[0].at("reads_served")) >= 2);
  std::map<std::string, long long> decisions;
  for (const auto& row : console_rows(px, "SHOW ROUTING")) {
    decisions[row.at("reason")] = std::stoll(row.at("decisions"));
  }
  CHECK(decisions["replica_lagging"] >= 10);  // the reads sent to the primary while it lagged
  CHECK(decisions["read"] >= 2);
  // One exclusion and one readmission: no flapping.
  CHECK(px.count_in_log("replica excluded from reads") == 1);
  CHECK(px.count_in_log("replica eligible for reads") == 2);  // at start, after catch-up
}

TEST_CASE("lag: max_replica_lag_ms excludes a replica whose replay is stuck") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("lag-ms",
                                         "read_your_writes = \"off\"\n"
                                         "max_replica_lag_ms = 500\n"
                                         "lag_check_interval_ms = 100\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  ReplayPause pause;
  PgConn p = direct_primary();
  // Small writes keep the replica behind while its last replay grows old.
  const auto start = Clock::now();
  bool left = false;
  while (!left && seconds_since(start) < 3.0) {
    p.run("INSERT INTO lag_items VALUES (" +
          std::to_string(100000 + static_cast<int>(seconds_since(start) * 1000)) +
          ", 'tick') ON CONFLICT DO NOTHING");
    left = where(c) == "primary";
    std::this_thread::sleep_for(milliseconds(50));
  }
  CHECK(left);
  CHECK(px.wait_for_log("over max_replica_lag_ms", milliseconds(1000)));
  pause.resume();
  CHECK(wait_until([&] { return where(c) == "replica"; }, milliseconds(5000)));
}

TEST_CASE(
    "read-your-writes: 1,000 inserts each read back at once while the replica lags "
    "on and off") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("ryw",
                                         "read_your_writes = \"client\"\n"
                                         "causal_wait_ms = 20\n"
                                         "lag_check_interval_ms = 100\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  // Replay paused and resumed in a loop: the replica lags by up to ~60 ms of writes.
  std::atomic<bool> stop{false};
  std::thread toggler([&] {
    PgConn r = direct_replica();
    for (int i = 0; !stop && i < 2000; ++i) {
      r.run(i % 2 == 0 ? "SELECT pg_wal_replay_pause()" : "SELECT pg_wal_replay_resume()");
      std::this_thread::sleep_for(milliseconds(60));
    }
    r.run("SELECT pg_wal_replay_resume()");
  });
  // The fixture's servers run with synchronous_commit = off, which leaves a commit's WAL
  // unsent for up to wal_writer_delay (200 ms); this client commits as production does.
  PgConn c(px.conninfo("app", "secret", "app", "options='-c synchronous_commit=on'"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  int missing = 0, on_replica = 0;
  std::string first_failure;
  const auto start = Clock::now();
  for (int i = 1; i <= 1000; ++i) {
    const std::string id = std::to_string(i);
    const PgResult w = c.exec("INSERT INTO lag_items VALUES (" + id + ", 'ryw')");
    if (!w.ok()) {
      if (first_failure.empty()) first_failure = "INSERT " + id + ": " + w.describe();
      ++missing;
      continue;
    }
    const PgResult r = c.exec("SELECT v, pg_is_in_recovery() FROM lag_items WHERE id = " + id);
    if (!r.ok() || r.rows() != 1 || r.value(0, 0) != "ryw") {
      if (first_failure.empty()) first_failure = "SELECT " + id + ": " + r.describe();
      ++missing;
      continue;
    }
    if (r.value(0, 1) == "t") ++on_replica;
  }
  stop = true;
  toggler.join();
  const double took = seconds_since(start);
  MESSAGE("read-your-writes: ", 1000 - missing, "/1000 rows seen, ", on_replica, " reads (",
          on_replica / 10.0, " %) served by the replica, in ", took, " s");
  CHECK_MESSAGE(missing == 0, first_failure);
  CHECK(on_replica >= 100);  // a meaningful share still ran on the replica
  CHECK(on_replica <= 990);  // …and the paused phases did push reads to the primary
  // The client learnt its last write position.
  const char* lsn = PQparameterStatus(c.get(), "pgmux.last_write_lsn");
  REQUIRE(lsn != nullptr);
  CHECK(std::string(lsn).find('/') != std::string::npos);
}

TEST_CASE(
    "read-your-writes: pgmux.last_write_lsn carried to another connection with "
    "SET pgmux.min_lsn") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("min-lsn",
                                         "read_your_writes = \"client\"\n"
                                         "lag_check_interval_ms = 100\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn writer(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(writer.ok(), writer.error());
  PgConn p = direct_primary();
  ReplayPause pause;
  writer.run("INSERT INTO lag_items VALUES (424242, 'carried')");
  // pgmux sends the position before the write's ReadyForQuery: the client has it on return.
  const char* reported = PQparameterStatus(writer.get(), "pgmux.last_write_lsn");
  REQUIRE(reported != nullptr);
  const std::string lsn = reported;
  // It is a real position: at or before the primary's current one, and past the replica's.
  CHECK(p.query_value("SELECT '" + lsn + "'::pg_lsn <= pg_current_wal_insert_lsn()") == "t");
  CHECK(p.query_value("SELECT '" + lsn + "'::pg_lsn > '0/0'::pg_lsn") == "t");
  PgConn r = direct_replica();
  CHECK(r.query_value("SELECT '" + lsn + "'::pg_lsn > pg_last_wal_replay_lsn()") == "t");

  // A second connection that carries the position reads the row from the primary…
  PgConn reader(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(reader.ok(), reader.error());
  CHECK(where(reader) == "replica");  // nothing carried yet
  reader.run("SET pgmux.min_lsn = '" + lsn + "'");
  const PgResult row =
      reader.exec("SELECT v, pg_is_in_recovery() FROM lag_items WHERE id = 424242");
  REQUIRE_MESSAGE(row.ok(), row.describe());
  REQUIRE(row.rows() == 1);
  CHECK(row.value(0, 0) == "carried");
  CHECK(row.value(0, 1) == "f");
  // …and, once the replica has replayed it, from the replica. The replica's own replay is
  // waited for first: on a loaded machine it may still be replaying what earlier tests wrote,
  // and that is not pgmux's time to account for.
  pause.resume();
  REQUIRE(wait_until(
      [&] {
        return r.query_value("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t";
      },
      milliseconds(30000)));
  CHECK(wait_until([&] { return where(reader) == "replica"; }, milliseconds(5000)));
  // Also as a startup option; a malformed position is refused (22023).
  PgConn opt(px.conninfo("app", "secret", "app", "options='-c pgmux.min_lsn=" + lsn + "'"));
  REQUIRE_MESSAGE(opt.ok(), opt.error());
  CHECK(opt.query_value("SELECT v FROM lag_items WHERE id = 424242") == "carried");
  const PgResult bad = reader.exec("SET pgmux.min_lsn = 'not-an-lsn'");
  CHECK_FALSE(bad.ok());
  CHECK_MESSAGE(bad.sqlstate() == "22023", bad.describe());
  const PgResult unknown = reader.exec("SET pgmux.colour = 'blue'");
  CHECK_FALSE(unknown.ok());
  CHECK_MESSAGE(unknown.sqlstate() == "42704", unknown.describe());
}

TEST_CASE("lag monitor: survives the replica and the primary restarting; reads never block") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("monitor-restarts",
                                         "read_your_writes = \"off\"\n"
                                         "lag_check_interval_ms = 100\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(where(c) == "replica");

  test_env().cluster().stop_replica();
  CHECK(px.wait_for_log("replica excluded from reads", milliseconds(3000)));
  int errors = 0;
  for (int i = 0; i < 20; ++i) errors += where(c) == "primary" ? 0 : 1;
  CHECK(errors == 0);
  test_env().cluster().start_replica();
  CHECK(wait_until([&] { return where(c) == "replica"; }, milliseconds(8000)));

  // The primary goes away: reads keep being served by the replica meanwhile (no limits are
  // set, so an unknown primary position does not exclude it), on a fresh connection too.
  test_env().cluster().stop_primary();
  const auto down = Clock::now();
  int served = 0;
  while (seconds_since(down) < 1.0) {
    PgConn during(px.conninfo("app", "secret"));
    if (during.ok() && where(during) == "replica") ++served;
  }
  CHECK(served > 0);
  test_env().cluster().start_primary();
  CHECK(wait_until([&] { return px.count_in_log("connected to the primary") >= 2; },
                   milliseconds(8000)));
  PgConn after(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(wait_until(
      [&] {
        const PgResult w = after.exec(
            "INSERT INTO lag_items VALUES (777777, 'back') "
            "ON CONFLICT (id) DO UPDATE SET v = 'back'");
        return w.ok();
      },
      milliseconds(8000)));
  CHECK(wait_until([&] { return where(after) == "replica"; }, milliseconds(8000)));
}

TEST_CASE("read-your-writes per user; primary_reads = never with on_no_replica = error") {
  create_lag_table();
  PgmuxProcess px(test_env(), lag_routed("ryw-user",
                                         "read_your_writes = \"user\"\n"
                                         "lag_check_interval_ms = 100\n"
                                         "max_replica_lag_bytes = 1000000\n"
                                         "primary_reads = \"never\"\n"
                                         "on_no_replica = \"error\"\n"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  {
    ReplayPause pause;
    a.run("INSERT INTO lag_items VALUES (5150, 'shared')");
    // b never wrote, but shares a's database user: it reads a's row, from the primary, since
    // the replica lacks it (read-your-writes outranks primary_reads = "never").
    const PgResult r = b.exec("SELECT v, pg_is_in_recovery() FROM lag_items WHERE id = 5150");
    REQUIRE_MESSAGE(r.ok(), r.describe());
    REQUIRE(r.rows() == 1);
    CHECK(r.value(0, 0) == "shared");
    CHECK(r.value(0, 1) == "f");
  }
  // Once the replica has replayed it, both read there.
  CHECK(wait_until([&] { return b.query_value("SELECT pg_is_in_recovery()::text") == "true"; },
                   milliseconds(5000)));
  CHECK(wait_until([&] { return a.query_value("SELECT pg_is_in_recovery()::text") == "true"; },
                   milliseconds(5000)));
  // Over the byte limit no replica may serve reads, and the primary must not: refused (57P03).
  ReplayPause pause;
  PgConn p = direct_primary();
  p.run("INSERT INTO lag_items SELECT g, repeat('y', 1000) FROM generate_series(20000, 24000) g");
  CHECK(wait_until(
      [&] {
        const PgResult r = b.exec("SELECT 1");
        return !r.ok() && r.sqlstate() == "57P03" &&
               r.error().find("replica_lagging") != std::string::npos &&
               r.error().find("primary_reads = \"never\"") != std::string::npos;
      },
      milliseconds(3000)));
}

TEST_CASE("lag monitor: a LOGIN-only role is enough to run it; a superuser login is warned about") {
  {
    // app has no privileges beyond LOGIN: the monitor's queries still sample both servers
    // (a replica is eligible only once sampled within its limits).
    PgmuxProcess px(test_env(), lag_routed("monitor-app",
                                           "lag_monitor_user = \"app\"\n"
                                           "lag_check_interval_ms = 100\n"));
    INFO(px.log_tail());
    CHECK(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
    // Logged at connection, before the first sample: it would be there by now.
    CHECK_FALSE(px.wait_for_log("a superuser", milliseconds(200)));
  }
  // The default, the first admin, is one (admin is a superuser in the test cluster).
  PgmuxProcess px(test_env(), lag_routed("monitor-admin", "lag_check_interval_ms = 100\n"));
  INFO(px.log_tail());
  CHECK(px.wait_for_log("the lag monitor logs in as admin, a superuser", milliseconds(5000)));
}
