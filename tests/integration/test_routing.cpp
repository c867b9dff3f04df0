// Read/write routing against the real primary + streaming replica: each statement reports where
// it ran (pg_is_in_recovery(), inet_server_port()); pgbench -S is checked with the servers' own
// pg_stat_database counters; the replica is stopped mid-run and reads carry on.
#include <doctest/doctest.h>

#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgbench_runner.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"

using namespace pgmux::it;

namespace {

// Routing on; read-your-writes off, so where a read runs depends on the statement alone
// (test_lag_routing.cpp covers read-your-writes).
PgmuxOptions routed(std::string name, std::string routing_toml = "") {
  return {.name = std::move(name),
          .pool_size = 4,
          .query_wait_timeout_ms = 10000,
          .mode = "transaction",
          .routing_toml =
              "read_write_split = \"on\"\nreplica_ban_ms = 1000\n"
              "read_your_writes = \"off\"\n" +
              std::move(routing_toml)};
}

// The lag monitor admits the replica after its first sample.
void wait_replica_eligible(const PgmuxProcess& px) {
  REQUIRE_MESSAGE(px.wait_for_log("replica eligible for reads", milliseconds(5000)), px.log_tail());
}

// Objects the routing tests use, created on the primary and waited for on the replica.
void create_routing_fixtures() {
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  p.run("CREATE TABLE IF NOT EXISTS rt_items (id serial PRIMARY KEY, v text)");
  p.run("GRANT ALL ON rt_items, rt_items_id_seq TO app");
  p.run("INSERT INTO rt_items (v) SELECT 'seed' WHERE NOT EXISTS (SELECT 1 FROM rt_items)");
  p.run("CREATE SEQUENCE IF NOT EXISTS rt_seq");
  p.run("GRANT ALL ON rt_seq TO app");
  // Both report where they ran; only their declared volatility differs.
  p.run(
      "CREATE OR REPLACE FUNCTION rt_volatile() RETURNS bool LANGUAGE sql VOLATILE "
      "AS 'SELECT pg_is_in_recovery()'");
  p.run(
      "CREATE OR REPLACE FUNCTION rt_stable() RETURNS bool LANGUAGE sql STABLE "
      "AS 'SELECT pg_is_in_recovery()'");
  PgConn r = direct_replica();
  REQUIRE_MESSAGE(r.ok(), r.error());
  REQUIRE(wait_until(
      [&] {
        return r.query_value("SELECT count(*) FROM pg_proc WHERE proname = 'rt_stable'") == "1" &&
               r.query_value("SELECT count(*) FROM rt_items") != "0";
      },
      milliseconds(10000)));
}

std::uint64_t xact_commit(PgConn& c) {
  return std::stoull(
      c.query_value("SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'"));
}

}  // namespace

TEST_CASE(
    "routing: reads go to the replica; writes, locks, volatile functions and "
    "transactions to the primary") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  // The first transaction on the primary reads pg_proc for the function catalog.
  CHECK(where(c, "INSERT INTO rt_items (v) VALUES ('warm') RETURNING pg_is_in_recovery()") ==
        "primary");
  REQUIRE(px.wait_for_log("side-effect-free function names", milliseconds(5000)));

  CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
  CHECK(c.query_value("SELECT inet_server_port()") ==
        std::to_string(test_env().cluster().replica_port()));
  CHECK(where(c, "select pg_is_in_recovery() from rt_items limit 1") == "replica");
  CHECK(where(c, "SELECT pg_is_in_recovery(), nextval('rt_seq')") == "primary");
  CHECK(where(c, "SELECT pg_is_in_recovery() FROM rt_items LIMIT 1 FOR UPDATE") == "primary");
  CHECK(where(c, "SELECT pg_is_in_recovery() FROM rt_items LIMIT 1 FOR SHARE") == "primary");
  CHECK(where(c,
              "WITH i AS (INSERT INTO rt_items (v) VALUES ('cte') RETURNING id) "
              "SELECT pg_is_in_recovery() FROM i") == "primary");
  CHECK(where(c, "INSERT INTO rt_items (v) VALUES ('x') RETURNING pg_is_in_recovery()") ==
        "primary");
  CHECK(where(c, "SELECT rt_volatile()") == "primary");  // user function declared volatile
  CHECK(where(c, "SELECT rt_stable()") == "replica");    // …and one declared stable

  SUBCASE("an explicit transaction stays on the primary; a read-only one may use the replica") {
    c.run("BEGIN");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "primary");
    CHECK(where(c, "SELECT pg_is_in_recovery() FROM rt_items LIMIT 1") == "primary");
    c.run("COMMIT");
    c.run("BEGIN READ ONLY");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
    c.run("COMMIT");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
  }
  SUBCASE("hints and pgmux.target") {
    CHECK(where(c, "/* pgmux:primary */ SELECT pg_is_in_recovery()") == "primary");
    CHECK(where(c, "/* pgmux:replica */ SELECT pg_is_in_recovery()") == "replica");
    c.run("SET pgmux.target = 'primary'");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "primary");
    c.run("SET pgmux.target = 'auto'");
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
    const PgResult bad = c.exec("SET pgmux.target = 'sideways'");
    CHECK_FALSE(bad.ok());
    CHECK_MESSAGE(bad.sqlstate() == "22023", bad.describe());
    CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");  // the session is fine
    // Never forwarded: the servers never heard of pgmux.target.
    CHECK(c.query_value("/* pgmux:primary */ SELECT coalesce(current_setting('pgmux.target', "
                        "true), 'unset')") == "unset");
    PgConn opt(px.conninfo("app", "secret", "app", "options='-c pgmux.target=primary'"));
    REQUIRE_MESSAGE(opt.ok(), opt.error());
    CHECK(where(opt, "SELECT pg_is_in_recovery()") == "primary");
    CHECK(opt.query_value("SELECT coalesce(current_setting('pgmux.target', true), 'unset')") ==
          "unset");
  }
  SUBCASE("extended protocol: unnamed and named statements keep their class") {
    const PgResult r = c.exec_params("SELECT pg_is_in_recovery() WHERE $1::int = 1", {"1"});
    REQUIRE_MESSAGE(r.ok(), r.describe());
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "t");
    PGresult* prep = PQprepare(c.get(), "rt_read", "SELECT pg_is_in_recovery()", 0, nullptr);
    CHECK(PQresultStatus(prep) == PGRES_COMMAND_OK);
    PQclear(prep);
    prep =
        PQprepare(c.get(), "rt_write", "SELECT pg_is_in_recovery(), nextval('rt_seq')", 0, nullptr);
    CHECK(PQresultStatus(prep) == PGRES_COMMAND_OK);
    PQclear(prep);
    for (int i = 0; i < 3; ++i) {
      PgResult read(PQexecPrepared(c.get(), "rt_read", 0, nullptr, nullptr, nullptr, 0));
      REQUIRE_MESSAGE(read.ok(), read.describe());
      CHECK(std::string(PQgetvalue(read.get(), 0, 0)) == "t");
      PgResult write(PQexecPrepared(c.get(), "rt_write", 0, nullptr, nullptr, nullptr, 0));
      REQUIRE_MESSAGE(write.ok(), write.describe());
      CHECK(std::string(PQgetvalue(write.get(), 0, 0)) == "f");
    }
  }
}

TEST_CASE("routing: pipelined read then write on one connection each run where they belong") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing-pipeline"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  // One Query message with a read, sent back to back with a write: the write must not follow
  // the read onto the replica.
  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "SELECT pg_is_in_recovery()", 0, nullptr, nullptr, nullptr,
                            nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQsendQueryParams(c.get(),
                            "INSERT INTO rt_items (v) VALUES ('piped') RETURNING "
                            "pg_is_in_recovery()",
                            0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  std::vector<std::string> got;
  for (int i = 0; i < 8 && got.size() < 2; ++i) {
    PgResult r = c.next_result();
    if (!r) continue;
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) got.emplace_back(PQgetvalue(r.get(), 0, 0));
    if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR) got.push_back("error: " + r.error());
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "t");
  CHECK(got[1] == "f");
}

TEST_CASE("routing: pgbench -S through pgmux runs on the replica") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing-pgbench"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn primary = direct_primary();
  PgConn replica = direct_replica();
  REQUIRE(primary.ok());
  REQUIRE(replica.ok());
  const CommandResult init = run_command({.argv = pgbench_args(px, {"-i", "-s", "1"}),
                                          .env = kAppEnv,
                                          .timeout = std::chrono::seconds(120)});
  REQUIRE_MESSAGE(init.exit_code == 0, init.describe());
  REQUIRE(wait_until(
      [&] { return replica.query_value("SELECT count(*) FROM pgbench_branches") == "1"; },
      milliseconds(10000)));
  const std::uint64_t p0 = xact_commit(primary);
  const std::uint64_t r0 = xact_commit(replica);
  const CommandResult run =
      run_command({.argv = pgbench_args(px, {"-S", "-c", "8", "-j", "2", "-t", "250"}),
                   .env = kAppEnv,
                   .timeout = std::chrono::seconds(120)});
  INFO(run.describe());
  REQUIRE(run.exit_code == 0);
  CHECK(match(run.out, R"(number of failed transactions: (\d+))") == "0");
  MESSAGE("pgbench -S via pgmux (replica reads): tps = ", match(run.out, R"(tps = ([0-9.]+))"));
  // Statistics reach pg_stat_database when backends flush them (idle, or at exit).
  // Only the replica is polled: each query of the watcher counts as a commit where it runs.
  std::uint64_t r_delta = 0;
  wait_until(
      [&] {
        r_delta = xact_commit(replica) - r0;
        return r_delta >= 2000;
      },
      milliseconds(15000));
  const std::uint64_t p_delta = xact_commit(primary) - p0;
  MESSAGE("xact_commit: replica +", r_delta, ", primary +", p_delta);
  CHECK(r_delta >= 2000);
  CHECK(p_delta < 100);  // pgbench's own setup (vacuum, truncate), not its 2,000 reads
}

TEST_CASE("routing: a stopped replica is banned and reads carry on without errors") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing-failover"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
  test_env().cluster().stop_replica();
  int errors = 0, on_primary = 0;
  for (int i = 0; i < 50; ++i) {
    const std::string w = where(c, "SELECT pg_is_in_recovery()");
    if (w == "primary") ++on_primary;
    if (w.starts_with("error")) {
      ++errors;
      MESSAGE(w);
    }
  }
  CHECK(errors == 0);
  CHECK(on_primary == 50);
  // Whichever noticed first: the failed connection (ban) or the lag monitor (exclusion).
  CHECK((px.wait_for_log("banned for replica_ban_ms", milliseconds(1000)) ||
         px.wait_for_log("replica excluded from reads", milliseconds(1000))));
  test_env().cluster().start_replica();
  // The ban lapses after replica_ban_ms (1 s): reads return to the replica.
  CHECK(wait_until([&] { return where(c, "SELECT pg_is_in_recovery()") == "replica"; },
                   milliseconds(10000)));
}

TEST_CASE("session mode: a database entry with target = \"replica\" is a read-only alias") {
  create_routing_fixtures();
  const auto& cluster = test_env().cluster();
  PgmuxProcess px(
      test_env(),
      {.name = "routing-alias",
       .extra_toml = "[databases.app_ro]\ndbname = \"app\"\nprimary = { host = "
                     "\"127.0.0.1\", port = " +
                     std::to_string(cluster.primary_port()) +
                     " }\nreplicas = [ { host = \"127.0.0.1\", port = " +
                     std::to_string(cluster.replica_port()) + " } ]\ntarget = \"replica\"\n"});
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn ro(px.conninfo("app", "secret", "app_ro"));
  REQUIRE_MESSAGE(ro.ok(), ro.error());
  CHECK(where(ro, "SELECT pg_is_in_recovery()") == "replica");
  CHECK(ro.query_value("SELECT count(*) > 0 FROM rt_items") == "t");
  const PgResult w = ro.exec("INSERT INTO rt_items (v) VALUES ('no')");
  CHECK_FALSE(w.ok());
  CHECK_MESSAGE(w.sqlstate() == "25006", w.describe());
  PgConn rw(px.conninfo("app", "secret", "app"));
  REQUIRE_MESSAGE(rw.ok(), rw.error());
  CHECK(where(rw, "SELECT pg_is_in_recovery()") == "primary");  // the plain entry: primary
}

TEST_CASE(
    "routing: a write refused by a replica (25006) outside a transaction re-runs on the "
    "primary") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing-25006"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  // Forced onto the replica, writes are refused there and transparently run on the primary.
  CHECK(where(c,
              "/* pgmux:replica */ INSERT INTO rt_items (v) VALUES ('hinted') "
              "RETURNING pg_is_in_recovery()") == "primary");
  CHECK(px.wait_for_log("refused a statement as a write (25006)", milliseconds(2000)));
  c.run("SET pgmux.target = 'replica'");
  CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
  for (int i = 0; i < 3; ++i) {
    const PgResult r = c.exec("UPDATE rt_items SET v = v WHERE id = 1");
    CHECK_MESSAGE(r.ok(), r.describe());
  }
  CHECK(c.query_value("INSERT INTO rt_items (v) VALUES ('p') RETURNING 'answered'") == "answered");
  // Refused during execution, after the replica already described the result: the kept-back
  // RowDescription is dropped with the error, so the client sees exactly one.
  const PgResult seq = c.exec("SELECT nextval('rt_seq'), pg_is_in_recovery()");
  REQUIRE_MESSAGE(seq.ok(), seq.describe());
  CHECK(PQnfields(seq.get()) == 2);
  CHECK(seq.value(0, 1) == "f");
  // Extended protocol: an unnamed statement, and a named one prepared without a server.
  const PgResult ext = c.exec_params(
      "INSERT INTO rt_items (v) VALUES ($1) RETURNING pg_is_in_recovery()", {"extended"});
  REQUIRE_MESSAGE(ext.ok(), ext.describe());
  CHECK(ext.value(0, 0) == "f");
  PGresult* prep =
      PQprepare(c.get(), "rt_ins",
                "INSERT INTO rt_items (v) VALUES ($1) RETURNING pg_is_in_recovery()", 1, nullptr);
  CHECK(PQresultStatus(prep) == PGRES_COMMAND_OK);
  PQclear(prep);
  for (int i = 0; i < 3; ++i) {
    const char* v = "named";
    PgResult named(PQexecPrepared(c.get(), "rt_ins", 1, &v, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(named.ok(), named.describe());
    CHECK(named.value(0, 0) == "f");
  }
  // Inside a read-only transaction the client gets the error, as PostgreSQL would give it.
  c.run("BEGIN READ ONLY");
  const PgResult refused = c.exec("INSERT INTO rt_items (v) VALUES ('ro')");
  CHECK_FALSE(refused.ok());
  CHECK_MESSAGE(refused.sqlstate() == "25006", refused.describe());
  c.run("ROLLBACK");
  CHECK(where(c, "SELECT pg_is_in_recovery()") == "replica");
}

TEST_CASE("routing: RELOAD applies new write_functions and reads pg_proc again") {
  create_routing_fixtures();
  PgmuxProcess px(test_env(), routed("routing-reload"));
  INFO(px.log_tail());
  wait_replica_eligible(px);
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  c.run("INSERT INTO rt_items (v) VALUES ('warm')");  // the first primary transaction
  REQUIRE(px.wait_for_log("side-effect-free function names", milliseconds(5000)));
  CHECK(where(c, "SELECT rt_stable()") == "replica");

  const std::string original = px.config_text();
  const std::string marker = "read_your_writes = \"off\"\n";
  REQUIRE(original.find(marker) != std::string::npos);
  std::string listed = original;
  listed.replace(listed.find(marker), marker.size(),
                 marker + "write_functions = [\"rt_stable\"]\n");
  px.rewrite_config(listed);
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  REQUIRE(admin.exec("RELOAD").status() == PGRES_COMMAND_OK);
  CHECK(where(c, "SELECT rt_stable()") == "primary");  // listed: a write from now on

  px.rewrite_config(original);
  REQUIRE(admin.exec("RELOAD").status() == PGRES_COMMAND_OK);
  c.run("INSERT INTO rt_items (v) VALUES ('reread')");  // pg_proc is read again here
  CHECK(
      wait_until([&] { return where(c, "SELECT rt_stable()") == "replica"; }, milliseconds(3000)));
  CHECK(px.count_in_log("side-effect-free function names") >= 2);
}
