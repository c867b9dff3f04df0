// A server connection handed from one client to the next carries none of the first client's
// session state.
#include <doctest/doctest.h>

#include <thread>

#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("SET, temp tables and prepared statements do not leak to the next client") {
  PgmuxProcess px(test_env(), {.name = "leak", .pool_size = 1, .query_wait_timeout_ms = 10000});
  INFO(px.log_tail());
  std::string first_server, default_search_path;
  {
    PgConn c1(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c1.ok(), c1.error());
    first_server = c1.query_value("SELECT pg_backend_pid()");
    default_search_path = c1.query_value("SHOW search_path");
    c1.run("SET search_path = foo, public");
    c1.run("SET statement_timeout = 1234");
    c1.run("CREATE TEMP TABLE t1(x int)");
    c1.run("PREPARE leaked_stmt AS SELECT 1");
    c1.run("LISTEN leaked_channel");
    c1.run("SET application_name = 'leaky'");
    c1.run("SELECT set_config('myapp.marker', 'from client 1', false)");
    CHECK(c1.query_value("SHOW search_path") == "foo, public");
    CHECK(c1.query_value("SHOW statement_timeout") == "1234ms");
    CHECK(c1.query_value("SELECT to_regclass('pg_temp.t1') IS NOT NULL") == "t");
  }  // PQfinish

  PgConn c2(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c2.ok(), c2.error());
  REQUIRE_MESSAGE(c2.query_value("SELECT pg_backend_pid()") == first_server,
                  "client 2 did not get client 1's server connection");
  CHECK(default_search_path == "\"$user\", public");
  CHECK(c2.query_value("SHOW search_path") == default_search_path);
  CHECK(c2.query_value("SHOW statement_timeout") == "0");
  CHECK(c2.query_value("SELECT to_regclass('pg_temp.t1') IS NULL") == "t");
  CHECK(c2.query_value("SELECT count(*) FROM pg_prepared_statements") == "0");
  CHECK(c2.query_value("SELECT count(*) FROM pg_listening_channels()") == "0");
  CHECK(c2.query_value("SELECT coalesce(current_setting('myapp.marker', true), '')") == "");
  CHECK(c2.query_value("SHOW application_name") == "");
  // The ParameterStatus values client 2 was given reflect the reset session too.
  const char* app_name = PQparameterStatus(c2.get(), "application_name");
  CHECK(std::string(app_name ? app_name : "(not reported)") == "");
}

TEST_CASE("a client leaving inside a transaction does not commit it; the next client is idle") {
  PgmuxProcess px(test_env(), {.name = "txleave", .pool_size = 1, .query_wait_timeout_ms = 10000});
  INFO(px.log_tail());
  {
    PgConn setup(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(setup.ok(), setup.error());
    setup.run("DROP TABLE IF EXISTS it_txleave");
    setup.run("CREATE TABLE it_txleave(x int)");
  }
  std::string first_server;
  {
    PgConn c1(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c1.ok(), c1.error());
    first_server = c1.query_value("SELECT pg_backend_pid()");
    c1.run("BEGIN");
    c1.run("INSERT INTO it_txleave VALUES (1)");
    c1.run("SET LOCAL statement_timeout = 999");
    CHECK(c1.tx_status() == PQTRANS_INTRANS);
    CHECK(c1.query_value("SELECT count(*) FROM it_txleave") == "1");
  }  // PQfinish without COMMIT

  PgConn c2(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c2.ok(), c2.error());
  CHECK(c2.tx_status() == PQTRANS_IDLE);
  REQUIRE_MESSAGE(c2.query_value("SELECT pg_backend_pid()") == first_server,
                  "client 2 did not get client 1's server connection");
  CHECK(c2.query_value("SELECT count(*) FROM it_txleave") == "0");
  CHECK(c2.tx_status() == PQTRANS_IDLE);
  // Not inside the old transaction: a new statement gets a new transaction start time.
  CHECK(c2.query_value("SELECT now() = statement_timestamp()") == "t");
  CHECK(c2.query_value("SHOW statement_timeout") == "0");
  // BEGIN works without "there is already a transaction in progress".
  c2.run("BEGIN");
  c2.run("INSERT INTO it_txleave VALUES (2)");
  c2.run("COMMIT");
  CHECK(c2.query_value("SELECT string_agg(x::text, ',') FROM it_txleave") == "2");
  c2.run("DROP TABLE it_txleave");
}

TEST_CASE("a client leaving in a failed transaction leaves the server usable") {
  PgmuxProcess px(test_env(), {.name = "txfailed", .pool_size = 1, .query_wait_timeout_ms = 10000});
  INFO(px.log_tail());
  {
    PgConn c1(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c1.ok(), c1.error());
    c1.run("BEGIN");
    CHECK(c1.exec("SELECT 1/0").sqlstate() == "22012");
    CHECK(c1.tx_status() == PQTRANS_INERROR);
  }
  PgConn c2(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c2.ok(), c2.error());
  CHECK(c2.tx_status() == PQTRANS_IDLE);
  CHECK(c2.query_value("SELECT 'clean'") == "clean");
}

TEST_CASE("a client leaving during a running query frees its pool slot for the next client") {
  PgmuxProcess px(test_env(),
                  {.name = "busyleave", .pool_size = 1, .query_wait_timeout_ms = 10000});
  INFO(px.log_tail());
  std::string first_server;
  {
    PgConn c1(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c1.ok(), c1.error());
    first_server = c1.query_value("SELECT pg_backend_pid()");
    REQUIRE(PQsendQuery(c1.get(), "SELECT pg_sleep(2)") == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // PQfinish while the query runs
  const auto start = std::chrono::steady_clock::now();
  PgConn c2(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c2.ok(), c2.error());
  // The busy server cannot be reset and reused at once: c2 gets a usable session either way.
  CHECK(c2.tx_status() == PQTRANS_IDLE);
  CHECK(c2.query_value("SELECT 'next client'") == "next client");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  if (c2.query_value("SELECT pg_backend_pid()") == first_server) {
    // Reused after the query ended: it must have been reset.
    CHECK(c2.query_value("SELECT now() = statement_timestamp()") == "t");
  }
}
