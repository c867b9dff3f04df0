// Transaction pooling: many clients over few servers, with prepared statements, session
// settings, pinning, cancel and disconnects kept correct.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgbench_runner.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"

using namespace pgmux::it;

namespace {

PgmuxOptions tx_options(std::string name, int pool_size, std::string extra = "") {
  return {.name = std::move(name),
          .pool_size = pool_size,
          .query_wait_timeout_ms = 20000,
          .mode = "transaction",
          .extra_toml = std::move(extra)};
}

// Samples, every 20 ms while alive, how many server connections user `app` has on the primary.
class BackendSampler {
 public:
  BackendSampler()
      : thread_([this](std::stop_token stop) {
          PgConn c = direct_primary();
          if (!c.ok()) {
            error_ = c.error();
            return;
          }
          while (!stop.stop_requested()) {
            const int n = server_connections(c);
            max_ = std::max(max_.load(), n);
            ++samples_;
            std::this_thread::sleep_for(milliseconds(20));
          }
        }) {}
  int stop() {
    thread_.request_stop();
    thread_.join();
    return max_;
  }
  [[nodiscard]] int samples() const { return samples_; }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  std::atomic<int> max_{0}, samples_{0};
  std::string error_;
  std::jthread thread_;
};

std::string server_pid(PgConn& c) {
  return c.query_value("SELECT pg_backend_pid()");
}

}  // namespace

TEST_CASE("pgbench -M simple/extended/prepared, 200 clients over a pool of 10, TPC-B and -S") {
  PgmuxProcess px(test_env(), tx_options("tx-pgbench", 10));
  INFO(px.log_tail());
  // Older connections from other tests must be gone before counting this pool's servers.
  {
    PgConn c = direct_primary();
    REQUIRE_MESSAGE(c.ok(), c.error());
    wait_for_server_connections(c, 0, milliseconds(5000));
  }
  BackendSampler sampler;
  std::vector<PgbenchRun> runs;
  for (std::string mode : {"simple", "extended", "prepared"}) {
    runs.push_back({"TPC-B -M " + mode + " -c 200 -j 2 -t 10",
                    {"-M", mode, "-c", "200", "-j", "2", "-t", "10"},
                    200,
                    10});
    runs.push_back({"select-only -M " + mode + " -c 200 -j 2 -t 50",
                    {"-S", "-M", mode, "-c", "200", "-j", "2", "-t", "50"},
                    200,
                    50});
  }
  pgbench_init_and_run(px, runs);
  const int max_backends = sampler.stop();
  CHECK_MESSAGE(sampler.error().empty(), sampler.error());
  CHECK(sampler.samples() > 10);
  MESSAGE("most server connections seen at once: ", max_backends);
  CHECK(max_backends <= 10);
  CHECK(max_backends >= 2);
}

TEST_CASE("named prepared statements follow a client across servers") {
  PgmuxProcess px(test_env(), tx_options("tx-prepared", 2));
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  PgResult prep(PQprepare(a.get(), "s1", "SELECT pg_backend_pid(), $1::int * 2", 1, nullptr));
  REQUIRE_MESSAGE(prep.ok(), prep.describe());

  // Two other clients hold one server each in turn, so `a` must run s1 on both servers.
  PgConn b0(px.conninfo("app", "secret"));
  PgConn c0(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(b0.ok(), b0.error());
  REQUIRE_MESSAGE(c0.ok(), c0.error());
  auto exec_s1 = [&](int i) {
    const std::string v = std::to_string(i);
    const char* values[] = {v.c_str()};
    PgResult r(PQexecPrepared(a.get(), "s1", 1, values, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(r.ok(), r.describe());
    CHECK(r.value(0, 1) == std::to_string(i * 2));
    return r.value(0, 0);
  };
  std::set<std::string> pids;
  b0.run("BEGIN");
  const std::string pid_b = server_pid(b0);
  for (int round = 0; round < 3; ++round) {
    c0.run("BEGIN");
    const std::string pid_c = server_pid(c0);
    CHECK(pid_c != pid_b);
    b0.run("COMMIT");  // frees pid_b: the only server a can get
    const std::string on_b = exec_s1(round * 2);
    CHECK(on_b == pid_b);
    b0.run("BEGIN");
    CHECK(server_pid(b0) == pid_b);
    c0.run("COMMIT");  // frees pid_c
    const std::string on_c = exec_s1(round * 2 + 1);
    CHECK(on_c == pid_c);
    pids.insert(on_b);
    pids.insert(on_c);
  }
  b0.run("COMMIT");
  MESSAGE("s1 ran on ", pids.size(), " server connection(s)");
  CHECK(pids.size() == 2);

  // Describe works on any server too.
  PgResult desc(PQdescribePrepared(a.get(), "s1"));
  REQUIRE_MESSAGE(desc.ok(), desc.describe());
  CHECK(PQnparams(desc.get()) == 1);
  CHECK(PQnfields(desc.get()) == 2);

  // An unknown name fails as on PostgreSQL; a second client's statement of the same name is
  // its own.
  PgResult unknown(PQexecPrepared(a.get(), "nope", 0, nullptr, nullptr, nullptr, 0));
  CHECK(unknown.sqlstate() == "26000");
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(b.ok(), b.error());
  PgResult prep_b(PQprepare(b.get(), "s1", "SELECT 'b'::text", 0, nullptr));
  REQUIRE_MESSAGE(prep_b.ok(), prep_b.describe());
  PgResult rb(PQexecPrepared(b.get(), "s1", 0, nullptr, nullptr, nullptr, 0));
  REQUIRE_MESSAGE(rb.ok(), rb.describe());
  CHECK(rb.value(0, 0) == "b");
  const char* seven[] = {"7"};
  PgResult ra(PQexecPrepared(a.get(), "s1", 1, seven, nullptr, nullptr, 0));
  REQUIRE_MESSAGE(ra.ok(), ra.describe());
  CHECK(ra.value(0, 1) == "14");

  // SQL DEALLOCATE of a protocol-level statement, as psycopg sends it.
  a.run("DEALLOCATE s1");
  PgResult gone(PQexecPrepared(a.get(), "s1", 1, seven, nullptr, nullptr, 0));
  CHECK(gone.sqlstate() == "26000");
  // DEALLOCATE ALL and re-prepare under the same name.
  PgResult again(PQprepare(a.get(), "s1", "SELECT 3", 0, nullptr));
  REQUIRE_MESSAGE(again.ok(), again.describe());
  a.run("DEALLOCATE ALL");
  CHECK(PgResult(PQexecPrepared(a.get(), "s1", 0, nullptr, nullptr, nullptr, 0)).sqlstate() ==
        "26000");
}

TEST_CASE("a prepared statement whose result type changed is prepared again, once") {
  PgmuxProcess px(test_env(), tx_options("tx-replan", 1));
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  a.run("DROP TABLE IF EXISTS it_replan");
  a.run("CREATE TABLE it_replan(x int)");
  a.run("INSERT INTO it_replan VALUES (1)");
  PgResult prep(PQprepare(a.get(), "sel", "SELECT * FROM it_replan", 0, nullptr));
  REQUIRE_MESSAGE(prep.ok(), prep.describe());
  PgResult r1(PQexecPrepared(a.get(), "sel", 0, nullptr, nullptr, nullptr, 0));
  REQUIRE_MESSAGE(r1.ok(), r1.describe());
  CHECK(r1.cols() == 1);
  a.run("ALTER TABLE it_replan ADD COLUMN y int DEFAULT 5");
  PgResult r2(PQexecPrepared(a.get(), "sel", 0, nullptr, nullptr, nullptr, 0));
  // PostgreSQL reports the change once; pgmux then prepares the statement afresh.
  if (!r2.ok()) CHECK(r2.sqlstate() == "0A000");
  PgResult r3(PQexecPrepared(a.get(), "sel", 0, nullptr, nullptr, nullptr, 0));
  REQUIRE_MESSAGE(r3.ok(), r3.describe());
  CHECK(r3.cols() == 2);
  CHECK(r3.value(0, 1) == "5");
  a.run("DROP TABLE it_replan");
}

TEST_CASE("session settings follow each client to whatever server it gets") {
  // One worker: its 6 clients share the 2 servers in one queue, so each client meets both.
  // (With two, a server stays with the clients of its own worker.)
  PgmuxOptions options = tx_options("tx-settings", 2);
  options.workers = 1;
  PgmuxProcess px(test_env(), options);
  INFO(px.log_tail());
  PgConn plain_direct = direct_primary("app", "secret");
  REQUIRE_MESSAGE(plain_direct.ok(), plain_direct.error());
  const std::string default_tz = plain_direct.query_value("SHOW TimeZone");
  const std::string default_path = plain_direct.query_value("SHOW search_path");

  constexpr int kClients = 6;
  constexpr int kRounds = 40;
  std::vector<std::string> failures(kClients);
  std::vector<std::set<std::string>> pids(kClients);
  auto client = [&](int id) {
    try {
      const std::string tz = id % 2 == 0 ? "Asia/Tokyo" : "America/New_York";
      const std::string startup = "application_name=client" + std::to_string(id);
      PgConn c(px.conninfo("app", "secret", "app", startup));
      if (!c.ok()) throw std::runtime_error(c.error());
      const bool sets = id != kClients - 1;  // the last client changes nothing
      if (sets) {
        c.run("SET TimeZone = '" + tz + "'");
        c.run("SET search_path = it_schema_" + std::to_string(id) + ", public");
        c.run("SET statement_timeout = " + std::to_string(1501 + id));
        // SET LOCAL stays in its transaction.
        c.run("BEGIN");
        c.run("SET LOCAL work_mem = '7MB'");
        c.run("COMMIT");
      }
      for (int round = 0; round < kRounds; ++round) {
        PgResult r = c.exec(
            "SELECT current_setting('TimeZone'), current_setting('search_path'), "
            "current_setting('application_name'), current_setting('statement_timeout'), "
            "current_setting('work_mem'), pg_backend_pid()");
        if (!r.ok()) throw std::runtime_error(r.describe());
        const std::string want_tz = sets ? tz : default_tz;
        const std::string want_path =
            sets ? "it_schema_" + std::to_string(id) + ", public" : default_path;
        const std::string want_timeout = sets ? std::to_string(1501 + id) + "ms" : "0";
        if (r.value(0, 0) != want_tz || r.value(0, 1) != want_path ||
            r.value(0, 2) != "client" + std::to_string(id) || r.value(0, 3) != want_timeout ||
            r.value(0, 4) != "4MB") {
          throw std::runtime_error("round " + std::to_string(round) + ": got " + r.value(0, 0) +
                                   " | " + r.value(0, 1) + " | " + r.value(0, 2) + " | " +
                                   r.value(0, 3) + " | " + r.value(0, 4));
        }
        pids[id].insert(r.value(0, 5));
      }
      if (sets) {
        // RESET returns to the startup value; RESET ALL to the defaults.
        c.run("RESET TimeZone");
        if (c.query_value("SHOW TimeZone") != default_tz) throw std::runtime_error("RESET");
        c.run("SET application_name = 'renamed'");
        c.run("RESET ALL");
        if (c.query_value("SHOW application_name") != "client" + std::to_string(id) ||
            c.query_value("SHOW statement_timeout") != "0") {
          throw std::runtime_error("RESET ALL");
        }
      }
    } catch (const std::exception& e) {
      failures[id] = e.what();
    }
  };
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kClients; ++i) threads.emplace_back(client, i);
  }
  std::size_t moved = 0;
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(failures[i].empty(), failures[i]);
    moved += pids[i].size() > 1 ? 1 : 0;
  }
  MESSAGE(moved, " of ", kClients, " clients ran on more than one server connection");
  CHECK(moved >= 1);
}

TEST_CASE("LISTEN and session advisory locks pin the client until released") {
  PgmuxProcess px(test_env(), tx_options("tx-pin", 2));
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());

  a.run("LISTEN it_channel");
  const std::string pinned = server_pid(a);
  // b keeps running on the other server; a stays where its LISTEN is.
  for (int i = 0; i < 10; ++i) {
    b.run("SELECT 1");
    CHECK(server_pid(a) == pinned);
  }
  b.run("NOTIFY it_channel, 'hello'");
  a.run("SELECT 1");  // reads the notification that arrived
  PGnotify* n = PQnotifies(a.get());
  REQUIRE(n != nullptr);
  CHECK(std::string(n->relname) == "it_channel");
  CHECK(std::string(n->extra) == "hello");
  PQfreemem(n);
  // The admin console shows who is pinned and why.
  const auto pinned_rows = console_rows(px, "SHOW PINNED");
  REQUIRE(pinned_rows.size() == 1);
  CHECK(pinned_rows[0].at("reason") == "LISTEN");
  CHECK(pinned_rows[0].at("user") == "app");
  a.run("UNLISTEN *");
  CHECK(px.wait_for_log("unpinned", milliseconds(5000)));
  // The line is logged just before the pin is cleared.
  CHECK(wait_until([&] { return console_rows(px, "SHOW PINNED").empty(); }, milliseconds(5000)));

  a.run("SELECT pg_advisory_lock(4242)");
  const std::string holder = server_pid(a);
  CHECK(b.query_value("SELECT pg_try_advisory_lock(4242)") == "f");
  CHECK(server_pid(a) == holder);
  a.run("SELECT pg_advisory_unlock(4242)");
  CHECK(b.query_value("SELECT pg_try_advisory_lock(4242)") == "t");
  b.run("SELECT pg_advisory_unlock_all()");

  // A temp table lives as long as its session: same server, rows intact.
  a.run("CREATE TEMP TABLE it_tmp AS SELECT 1 AS x");
  for (int i = 0; i < 5; ++i) {
    b.run("SELECT 1");
    CHECK(a.query_value("SELECT count(*) FROM it_tmp") == "1");
  }
  // A pinned client that leaves takes its session state with it.
  a.close();
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (int i = 0; i < 4; ++i) {
    CHECK(c.query_value("SELECT count(*) FROM pg_listening_channels()") == "0");
    CHECK(c.query_value("SELECT to_regclass('pg_temp.it_tmp') IS NULL") == "t");
  }
}

TEST_CASE("pin_session_state = error refuses session-only statements with 0A000") {
  PgmuxOptions o = tx_options("tx-pin-error", 2);
  o.pool_toml = "pin_session_state = \"error\"";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  for (const char* sql : {"LISTEN it_refused", "SELECT pg_advisory_lock(1)",
                          "CREATE TEMP TABLE it_refused(x int)", "PREPARE it_p AS SELECT 1"}) {
    CAPTURE(sql);
    const PgResult r = a.exec(sql);
    CHECK(r.sqlstate() == "0A000");
    CHECK(r.error().find("pin_session_state") != std::string::npos);
  }
  // Inside a transaction the refusal aborts it, as a server-side error would.
  a.run("BEGIN");
  CHECK(a.exec("LISTEN it_refused").sqlstate() == "0A000");
  CHECK(a.tx_status() == PQTRANS_INERROR);
  a.run("ROLLBACK");
  CHECK(a.query_value("SELECT 'still fine'") == "still fine");
  // ON COMMIT DROP temp tables and transaction-level locks need no session.
  a.run("BEGIN");
  a.run("CREATE TEMP TABLE it_ok(x int) ON COMMIT DROP");
  a.run("SELECT pg_advisory_xact_lock(1)");
  a.run("COMMIT");
}

TEST_CASE("a client leaving mid-transaction is rolled back and its server reused") {
  PgmuxProcess px(test_env(), tx_options("tx-leave", 1));
  INFO(px.log_tail());
  PgConn setup(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(setup.ok(), setup.error());
  setup.run("DROP TABLE IF EXISTS it_tx_leave");
  setup.run("CREATE TABLE it_tx_leave(x int)");
  const std::string server = server_pid(setup);
  {
    PgConn a(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(a.ok(), a.error());
    a.run("BEGIN");
    a.run("INSERT INTO it_tx_leave VALUES (1)");
    a.run("SELECT pg_advisory_xact_lock(99)");
  }  // leaves without COMMIT
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(b.ok(), b.error());
  CHECK(b.query_value("SELECT count(*) FROM it_tx_leave") == "0");
  CHECK(server_pid(b) == server);  // the one server connection was reused, not replaced
  CHECK(b.query_value("SELECT pg_try_advisory_xact_lock(99)") == "t");
  b.run("DROP TABLE it_tx_leave");
}

TEST_CASE("cancel reaches the query of the right client under load") {
  PgmuxProcess px(test_env(), tx_options("tx-cancel", 3));
  INFO(px.log_tail());
  PgConn sleeper(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(sleeper.ok(), sleeper.error());
  std::atomic<bool> stop{false};
  std::atomic<int> others_failed{0}, others_ran{0};
  auto other = [&] {
    PgConn c(px.conninfo("app", "secret"));
    while (!stop && c.ok()) {
      const PgResult r = c.exec("SELECT pg_sleep(0.01)");
      if (r.ok()) {
        ++others_ran;
      } else {
        ++others_failed;
      }
    }
  };
  std::jthread o1(other), o2(other);
  // No query running: a cancel is dropped and harms nobody.
  PgCancel idle_cancel(sleeper);
  CHECK(idle_cancel.cancel().empty());
  REQUIRE(PQsendQuery(sleeper.get(), "SELECT pg_sleep(30)") == 1);
  std::this_thread::sleep_for(milliseconds(300));
  const auto start = Clock::now();
  PgCancel cancel(sleeper);
  CHECK(cancel.cancel().empty());
  const PgResult r = sleeper.collect(true, milliseconds(10000));
  CHECK(seconds_since(start) < 5.0);
  CHECK(r.sqlstate() == "57014");
  std::this_thread::sleep_for(milliseconds(200));
  stop = true;
  o1.join();
  o2.join();
  CHECK(others_failed == 0);
  CHECK(others_ran > 0);
  CHECK(sleeper.query_value("SELECT 'after cancel'") == "after cancel");
}

TEST_CASE("psycopg 3 from 50 threads: prepared queries, executemany, savepoints, COPY, cursors") {
  PgmuxProcess px(test_env(), tx_options("tx-psycopg", 10));
  INFO(px.log_tail());
  const std::string script =
      std::string(PGMUX_SOURCE_DIR) + "/tests/integration/psycopg_workload.py";
  const CommandResult r =
      run_command({.argv = {"/usr/bin/python3", script, px.conninfo("app", "secret"), "50"},
                   .timeout = std::chrono::seconds(240)});
  INFO("psycopg workload: ", r.describe());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("ok: 50 threads") != std::string::npos);
  MESSAGE(r.out);
}

TEST_CASE("idle_transaction_timeout_ms and client_idle_timeout_ms end idle clients") {
  PgmuxOptions o = tx_options("tx-idle", 1);
  o.pool_toml = "idle_transaction_timeout_ms = 400\nclient_idle_timeout_ms = 1500";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  a.run("DROP TABLE IF EXISTS it_idle_tx");
  a.run("CREATE TABLE it_idle_tx(x int)");
  a.run("BEGIN");
  a.run("INSERT INTO it_idle_tx VALUES (1)");
  // Idle inside the transaction, holding the only server: pgmux ends the session and the
  // waiting client gets the server, with the transaction rolled back.
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(b.ok(), b.error());
  const auto start = Clock::now();
  CHECK(b.query_value("SELECT count(*) FROM it_idle_tx") == "0");
  const double waited = seconds_since(start);
  CAPTURE(waited);
  CHECK(waited >= 0.3);
  CHECK(waited < 5.0);
  const PgResult r = a.exec("COMMIT");
  CHECK(r.sqlstate() == "25P03");
  CHECK(r.error().find("idle_transaction_timeout_ms") != std::string::npos);
  b.run("DROP TABLE it_idle_tx");

  // A client holding no server may idle up to client_idle_timeout_ms.
  std::this_thread::sleep_for(milliseconds(800));
  CHECK(b.query_value("SELECT 'still here'") == "still here");
  std::this_thread::sleep_for(milliseconds(2000));
  const PgResult late = b.exec("SELECT 1");
  CHECK(late.sqlstate() == "57P05");
  CHECK(late.error().find("client_idle_timeout_ms") != std::string::npos);
}

TEST_CASE("server_check_query replaces a server connection that died while idle") {
  PgmuxOptions o = tx_options("tx-check", 1);
  o.pool_toml = "server_check_delay_ms = 0";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  const std::string first = server_pid(a);
  // The server connection is killed behind pgmux's back while it sits idle in the pool.
  PgConn killer = direct_primary("app", "secret");
  REQUIRE_MESSAGE(killer.ok(), killer.error());
  CHECK(killer.query_value("SELECT pg_terminate_backend(" + first + ")") == "t");
  std::this_thread::sleep_for(milliseconds(200));
  // pgmux notices (the server said goodbye on the idle socket) and a fresh connection serves
  // the query: the client sees no error.
  const PgResult r = a.exec("SELECT pg_backend_pid()");
  REQUIRE_MESSAGE(r.ok(), r.describe());
  CHECK(r.value(0, 0) != first);
  CHECK(px.wait_for_log("was closed or spoke while idle", milliseconds(2000)));
}

TEST_CASE("a connection failing server_check_query is replaced before the client uses it") {
  // A connection that died silently (no FIN: a network partition) is only found by the
  // check query; one that always fails stands in for it here.
  PgmuxOptions o = tx_options("tx-check-fails", 1);
  o.pool_toml = "server_check_delay_ms = 0\nserver_check_query = \"SELECT 1/0\"";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  std::set<std::string> pids;
  for (int i = 0; i < 3; ++i) {
    const PgResult r = a.exec("SELECT pg_backend_pid()");
    REQUIRE_MESSAGE(r.ok(), r.describe());
    pids.insert(r.value(0, 0));
  }
  CHECK(pids.size() == 3);  // each reuse failed the check: a new connection every time
  CHECK(px.wait_for_log("failed server_check_query", milliseconds(2000)));
}

TEST_CASE("statement mode serves autocommit statements and refuses transaction blocks") {
  PgmuxOptions o = tx_options("stmt", 1);
  o.mode = "statement";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  a.run("DROP TABLE IF EXISTS it_stmt");
  a.run("CREATE TABLE it_stmt(x int)");
  const PgResult r = a.exec("BEGIN");
  CHECK(r.sqlstate() == "0A000");
  CHECK(r.error().find("statement pooling mode") != std::string::npos);
  CHECK(a.tx_status() == PQTRANS_IDLE);
  // The one server connection was rolled back and handed on: b is not stuck behind a.
  CHECK(b.query_value("SELECT 'b runs'") == "b runs");
  const PgResult insert = a.exec_params("INSERT INTO it_stmt VALUES ($1)", {"1"});
  CHECK_MESSAGE(insert.ok(), insert.describe());
  CHECK(b.query_value("SELECT count(*) FROM it_stmt") == "1");
  // One Query message that is a whole transaction ends Idle, so it is allowed.
  a.run("BEGIN; INSERT INTO it_stmt VALUES (2); COMMIT");
  CHECK(b.query_value("SELECT count(*) FROM it_stmt") == "2");
  b.run("DROP TABLE it_stmt");
}

TEST_CASE("query_timeout_ms cancels a request that runs too long") {
  PgmuxOptions o = tx_options("tx-qtimeout", 2);
  o.pool_toml = "query_timeout_ms = 500";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  CHECK(a.query_value("SELECT 'quick'") == "quick");
  const auto start = Clock::now();
  const PgResult r = a.exec("SELECT pg_sleep(20), 'it_query_timeout'");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK(r.sqlstate() == "57014");
  CHECK(r.error().find("query_timeout_ms") != std::string::npos);
  CHECK(took >= 0.4);
  CHECK(took < 5.0);
  // The query was cancelled on the server, not left running.
  PgConn watcher = direct_primary();
  REQUIRE_MESSAGE(watcher.ok(), watcher.error());
  CHECK(wait_until(
      [&] {
        return watcher.query_value(
                   "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                   "AND query LIKE '%it_query_timeout%' AND pid <> "
                   "pg_backend_pid()") == "0";
      },
      milliseconds(5000)));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(b.ok(), b.error());
  CHECK(b.query_value("SELECT 'after'") == "after");
}

TEST_CASE("min_pool_size keeps that many server connections open") {
  PgmuxOptions o = tx_options("tx-minpool", 5);
  o.pool_toml = "min_pool_size = 3";
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  PgConn watcher = direct_primary();
  REQUIRE_MESSAGE(watcher.ok(), watcher.error());
  auto servers = [&] { return server_connections(watcher); };
  // Earlier tests' server connections close when their pgmux stops.
  wait_until([&] { return servers() == 0; }, milliseconds(5000));
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  CHECK(a.query_value("SELECT 1") == "1");  // the pool exists from the first login on
  CHECK(wait_until([&] { return servers() == 3; }, milliseconds(8000)));
  std::this_thread::sleep_for(milliseconds(2500));
  CHECK(servers() == 3);  // topped up to the minimum, not beyond
}

TEST_CASE("each client keeps the ParameterStatus values it was told while sharing one server") {
  // One server for three clients taking turns: pgmux tells each client only what differs from
  // what that client was told before, whichever client used the server last.
  PgmuxProcess px(test_env(), tx_options("tx-reported", 1));
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret", "app", "application_name=alpha"));
  PgConn b(px.conninfo("app", "secret", "app", "application_name=beta"));
  PgConn plain(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  REQUIRE_MESSAGE(plain.ok(), plain.error());
  const std::string default_tz = plain.query_value("SHOW TimeZone");
  a.run("SET TimeZone = 'Asia/Tokyo'");
  auto reported = [](PgConn& c, const char* name) {
    const char* value = PQparameterStatus(c.get(), name);
    return std::string(value ? value : "(not reported)");
  };
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    CHECK(a.query_value("SELECT current_setting('application_name')") == "alpha");
    CHECK(reported(a, "application_name") == "alpha");
    CHECK(reported(a, "TimeZone") == "Asia/Tokyo");
    CHECK(b.query_value("SELECT current_setting('TimeZone')") == default_tz);
    CHECK(reported(b, "application_name") == "beta");
    CHECK(reported(b, "TimeZone") == default_tz);
    CHECK(plain.query_value("SELECT current_setting('application_name')") == "");
    CHECK(reported(plain, "application_name") == "");
    CHECK(reported(plain, "TimeZone") == default_tz);
  }
  // A change a client makes is reported to it, and to nobody else.
  b.run("SET application_name = 'beta2'");
  CHECK(reported(b, "application_name") == "beta2");
  CHECK(a.query_value("SELECT 1") == "1");
  CHECK(reported(a, "application_name") == "alpha");
  CHECK(b.query_value("SELECT current_setting('application_name')") == "beta2");
  CHECK(reported(b, "application_name") == "beta2");
}

TEST_CASE("a new server whose defaults differ from the pool's tells the client what changed") {
  PgmuxProcess px(test_env(), tx_options("tx-new-defaults", 1));
  INFO(px.log_tail());
  PgConn direct = direct_primary("app", "secret");
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  PgConn a(px.conninfo("app", "secret", "app", "application_name=alpha"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  const std::string first_pid = a.query_value("SELECT pg_backend_pid()");
  REQUIRE(std::string(PQparameterStatus(a.get(), "DateStyle")) == "ISO, MDY");
  // Servers connected from now on start with another DateStyle; the pool's one server is
  // replaced by such a server.
  direct.run("ALTER ROLE app SET DateStyle = 'German'");
  struct ResetRole {
    PgConn& c;
    ~ResetRole() { c.run("ALTER ROLE app RESET DateStyle"); }
  } reset_role{direct};
  direct.run("SELECT pg_terminate_backend(" + first_pid + ")");
  std::string pid = first_pid;
  for (int i = 0; i < 50 && pid == first_pid; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    PgResult r = a.exec("SELECT pg_backend_pid()");  // the first may see the lost server
    if (r.ok()) pid = r.value(0, 0);
  }
  REQUIRE(pid != first_pid);
  CHECK(a.query_value("SHOW DateStyle") == "German, DMY");
  CHECK(std::string(PQparameterStatus(a.get(), "DateStyle")) == "German, DMY");
  CHECK(std::string(PQparameterStatus(a.get(), "application_name")) == "alpha");
}
