// Extended query protocol through pgmux: named and unnamed statements, binary results, and a
// libpq pipeline.
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>

#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("a named prepared statement runs many times with parameters; unnamed ones too") {
  PgmuxProcess px(test_env(), {.name = "extended"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());

  const PgResult prep = c.collect(
      PQsendPrepare(c.get(), "add_and_tag",
                    "SELECT $1::int + $2::int, $3::text || '!', $4::text IS NULL", 4, nullptr));
  REQUIRE_MESSAGE(prep.status() == PGRES_COMMAND_OK, prep.describe());

  for (int i = 0; i < 20; ++i) {
    const std::string a = std::to_string(i), b = std::to_string(i * 100);
    const std::string tag = "row" + a;
    const char* values[4] = {a.c_str(), b.c_str(), tag.c_str(), i % 2 == 0 ? nullptr : "x"};
    const PgResult r =
        c.collect(PQsendQueryPrepared(c.get(), "add_and_tag", 4, values, nullptr, nullptr, 0));
    REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
    CHECK(r.value(0, 0) == std::to_string(i + i * 100));
    CHECK(r.value(0, 1) == tag + "!");
    CHECK(r.value(0, 2) == (i % 2 == 0 ? "t" : "f"));
  }

  // Describe of the prepared statement reports its parameters.
  const PgResult desc = c.collect(PQsendDescribePrepared(c.get(), "add_and_tag"));
  REQUIRE_MESSAGE(desc.status() == PGRES_COMMAND_OK, desc.describe());
  CHECK(PQnparams(desc.get()) == 4);
  CHECK(PQnfields(desc.get()) == 3);
  CHECK(PQparamtype(desc.get(), 0) == 23);  // int4

  // The statement lives in the session: it is visible in pg_prepared_statements.
  CHECK(c.query_value("SELECT count(*) FROM pg_prepared_statements WHERE name = 'add_and_tag'") ==
        "1");

  // Unnamed statements with PQexecParams, text results.
  for (int i = 0; i < 5; ++i) {
    const PgResult r = c.exec_params("SELECT upper($1), length($1), $2::int * 2",
                                     {"abc" + std::to_string(i), std::to_string(i)});
    REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
    CHECK(r.value(0, 0) == "ABC" + std::to_string(i));
    CHECK(r.value(0, 1) == "4");
    CHECK(r.value(0, 2) == std::to_string(i * 2));
  }
  // NULL parameter, and a binary-format result.
  const PgResult null_param = c.exec_params("SELECT coalesce($1, 'was null')", {std::nullopt});
  CHECK(null_param.value(0, 0) == "was null");
  const PgResult bin = c.exec_params("SELECT $1::int4 * 3", {"14"}, 1);
  REQUIRE_MESSAGE(bin.status() == PGRES_TUPLES_OK, bin.describe());
  REQUIRE(PQgetlength(bin.get(), 0, 0) == 4);
  std::uint32_t raw = 0;
  std::memcpy(&raw, PQgetvalue(bin.get(), 0, 0), 4);
  CHECK(ntohl(raw) == 42U);

  // An error in the extended protocol is reported and the session goes on.
  const PgResult err = c.exec_params("SELECT 10 / $1::int", {"0"});
  CHECK(err.sqlstate() == "22012");
  const char* v[4] = {"1", "2", "z", nullptr};
  const PgResult again =
      c.collect(PQsendQueryPrepared(c.get(), "add_and_tag", 4, v, nullptr, nullptr, 0));
  CHECK(again.value(0, 0) == "3");
}

TEST_CASE("a pipelined batch returns all results in order") {
  PgmuxProcess px(test_env(), {.name = "pipeline"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  c.run("CREATE TEMP TABLE pl(i int)");

  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  constexpr int kQueries = 50;
  for (int i = 0; i < kQueries; ++i) {
    const std::string p = std::to_string(i);
    const char* values[1] = {p.c_str()};
    const char* sql = i % 2 == 0 ? "SELECT $1::int * 10" : "INSERT INTO pl VALUES ($1::int)";
    REQUIRE(PQsendQueryParams(c.get(), sql, 1, nullptr, values, nullptr, nullptr, 0) == 1);
  }
  REQUIRE(PQpipelineSync(c.get()) == 1);

  for (int i = 0; i < kQueries; ++i) {
    CAPTURE(i);
    const PgResult r = c.next_result();
    if (i % 2 == 0) {
      REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
      CHECK(r.value(0, 0) == std::to_string(i * 10));
    } else {
      REQUIRE_MESSAGE(r.status() == PGRES_COMMAND_OK, r.describe());
      CHECK(r.cmd_tuples() == "1");
    }
    CHECK_FALSE(c.next_result());  // end of this query's results
  }
  const PgResult sync = c.next_result();
  CHECK(sync.status() == PGRES_PIPELINE_SYNC);

  // A second batch with an error in the middle: later queries are aborted until the sync.
  REQUIRE(PQsendQueryParams(c.get(), "SELECT 1", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "SELECT 1/0", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "SELECT 3", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  const PgResult first = c.next_result();
  CHECK(first.value(0, 0) == "1");
  CHECK_FALSE(c.next_result());
  const PgResult failed = c.next_result();
  CHECK(failed.sqlstate() == "22012");
  CHECK_FALSE(c.next_result());
  const PgResult aborted = c.next_result();
  CHECK(aborted.status() == PGRES_PIPELINE_ABORTED);
  CHECK_FALSE(c.next_result());
  CHECK(c.next_result().status() == PGRES_PIPELINE_SYNC);

  REQUIRE(PQexitPipelineMode(c.get()) == 1);
  CHECK(c.query_value("SELECT count(*) FROM pl") == std::to_string(kQueries / 2));
  CHECK(c.query_value("SELECT sum(i) FROM pl") == "625");  // 1 + 3 + … + 49
}
