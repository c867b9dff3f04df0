// Simple-query protocol through pgmux: values, multi-statement strings, errors, transactions.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("simple query returns the right values, types and NULLs") {
  PgmuxProcess px(test_env(), {.name = "simple"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());

  const PgResult r = c.exec("SELECT 1::int AS a, 'hello'::text AS b, NULL::int AS c, 2.5::numeric");
  REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
  CHECK(r.rows() == 1);
  CHECK(r.cols() == 4);
  CHECK(std::string(PQfname(r.get(), 0)) == "a");
  CHECK(std::string(PQfname(r.get(), 1)) == "b");
  CHECK(r.value(0, 0) == "1");
  CHECK(r.value(0, 1) == "hello");
  CHECK(r.is_null(0, 2));
  CHECK(r.value(0, 3) == "2.5");

  const PgResult many = c.exec("SELECT g, g * g FROM generate_series(1, 1000) g ORDER BY g");
  REQUIRE_MESSAGE(many.status() == PGRES_TUPLES_OK, many.describe());
  REQUIRE(many.rows() == 1000);
  CHECK(many.value(0, 0) == "1");
  CHECK(many.value(999, 0) == "1000");
  CHECK(many.value(999, 1) == "1000000");
  CHECK(c.query_value("SELECT current_user") == "app");
  CHECK(c.query_value("SELECT current_database()") == "app");
  CHECK(c.query_value("SELECT pg_is_in_recovery()") == "f");
}

TEST_CASE("a multi-statement query string runs every statement and returns the last result") {
  PgmuxProcess px(test_env(), {.name = "multi"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());

  const PgResult r = c.exec(
      "CREATE TEMP TABLE ms(x int); INSERT INTO ms VALUES (1), (2); INSERT INTO ms VALUES (3); "
      "UPDATE ms SET x = x * 10 WHERE x = 3; SELECT sum(x), count(*) FROM ms");
  REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
  REQUIRE(r.rows() == 1);
  CHECK(r.value(0, 0) == "33");
  CHECK(r.value(0, 1) == "3");
  // The statements really ran (and in one session): check with a follow-up query.
  CHECK(c.query_value("SELECT string_agg(x::text, ',' ORDER BY x) FROM ms") == "1,2,30");

  // A string whose last statement is a command returns that command's result.
  const PgResult cmd = c.exec("SELECT 1; DELETE FROM ms WHERE x < 3");
  REQUIRE_MESSAGE(cmd.status() == PGRES_COMMAND_OK, cmd.describe());
  CHECK(cmd.cmd_tuples() == "2");
  CHECK(c.query_value("SELECT count(*) FROM ms") == "1");
}

TEST_CASE("an error is reported with its SQLSTATE and the connection keeps working") {
  PgmuxProcess px(test_env(), {.name = "error"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());

  const PgResult r = c.exec("SELECT 1 / 0");
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK(r.sqlstate() == "22012");
  CHECK(r.error().find("division by zero") != std::string::npos);
  CHECK(c.tx_status() == PQTRANS_IDLE);
  CHECK(c.query_value("SELECT 42") == "42");

  const PgResult missing = c.exec("SELECT * FROM no_such_table_here");
  CHECK(missing.sqlstate() == "42P01");
  // An error in the middle of a multi-statement string stops the rest of it.
  const PgResult mid =
      c.exec("CREATE TEMP TABLE e1(x int); SELECT 1/0; CREATE TEMP TABLE e2(x int)");
  CHECK(mid.sqlstate() == "22012");
  CHECK(c.query_value("SELECT to_regclass('pg_temp.e1') IS NULL") == "t");
  CHECK(c.query_value("SELECT to_regclass('pg_temp.e2') IS NULL") == "t");
  CHECK(c.query_value("SELECT 'still alive'") == "still alive");
}

TEST_CASE("an error inside a transaction block puts it in error state and ROLLBACK recovers") {
  PgmuxProcess px(test_env(), {.name = "txerror"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());

  c.run("CREATE TEMP TABLE tx(x int)");
  c.run("BEGIN");
  CHECK(c.tx_status() == PQTRANS_INTRANS);
  c.run("INSERT INTO tx VALUES (1)");
  const PgResult r = c.exec("SELECT 1 / 0");
  CHECK(r.sqlstate() == "22012");
  CHECK(c.tx_status() == PQTRANS_INERROR);
  const PgResult ignored = c.exec("SELECT 1");
  CHECK(ignored.sqlstate() == "25P02");  // in_failed_sql_transaction
  CHECK(c.tx_status() == PQTRANS_INERROR);
  const PgResult rb = c.exec("ROLLBACK");
  CHECK_MESSAGE(rb.status() == PGRES_COMMAND_OK, rb.describe());
  CHECK(c.tx_status() == PQTRANS_IDLE);
  CHECK(c.query_value("SELECT count(*) FROM tx") == "0");

  // And a transaction that commits does commit.
  c.run("BEGIN");
  c.run("INSERT INTO tx VALUES (7)");
  c.run("COMMIT");
  CHECK(c.tx_status() == PQTRANS_IDLE);
  CHECK(c.query_value("SELECT sum(x) FROM tx") == "7");
}
