// Errors inside extended-protocol pipelines in transaction mode: after an ErrorResponse the
// server discards every message up to the client's next Sync, including messages the client
// sends only after the error arrived; pgmux must expect exactly what PostgreSQL sends, keep
// the connection, and keep the replica in service. libpq's pipeline mode makes the timing
// deterministic; psycopg 3's pipeline mode is the end-to-end driver check.
#include <doctest/doctest.h>

#include <thread>

#include "command.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "test_env.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

PgmuxOptions pipelined(std::string name, bool routing) {
  PgmuxOptions o{.name = std::move(name),
                 .pool_size = 2,
                 .query_wait_timeout_ms = 10000,
                 .mode = "transaction"};
  if (routing) {
    o.routing_toml = "read_write_split = \"on\"\nread_your_writes = \"off\"";
  }
  return o;
}

bool send_select(PGconn* pg, const char* sql) {
  return PQsendQueryParams(pg, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
}

// Statuses of results up to and including the pipeline's Sync result.
std::vector<ExecStatusType> results_until_sync(PgConn& c) {
  std::vector<ExecStatusType> got;
  for (int i = 0; i < 10; ++i) {
    PgResult r = c.next_result(milliseconds(10000));
    if (!r) continue;  // the end of one query's results
    got.push_back(r.status());
    if (r.status() == PGRES_PIPELINE_SYNC) break;
  }
  return got;
}

// SELECT 1/0 and a Flush; the error is read; only then SELECT 2 and the Sync.
void error_before_sync(PgConn& c) {
  PGconn* pg = c.get();
  REQUIRE(PQenterPipelineMode(pg) == 1);
  REQUIRE(send_select(pg, "SELECT 1/0"));
  REQUIRE(PQsendFlushRequest(pg) == 1);
  REQUIRE(PQflush(pg) == 0);
  PgResult failed = c.next_result(milliseconds(10000));
  REQUIRE(failed);
  CHECK(failed.sqlstate() == "22012");
  CHECK_FALSE(c.next_result(milliseconds(10000)));  // end of that query's results
  std::this_thread::sleep_for(milliseconds(50));
  REQUIRE(send_select(pg, "SELECT 2"));
  REQUIRE(PQpipelineSync(pg) == 1);
  const std::vector<ExecStatusType> rest = results_until_sync(c);
  REQUIRE(rest.size() == 2);
  CHECK(rest[0] == PGRES_PIPELINE_ABORTED);
  CHECK(rest[1] == PGRES_PIPELINE_SYNC);
  REQUIRE(PQexitPipelineMode(pg) == 1);
}

}  // namespace

TEST_CASE("an error before the pipeline's Sync: the client gets what PostgreSQL sends") {
  for (const bool routing : {false, true}) {
    CAPTURE(routing);
    PgmuxProcess px(test_env(), pipelined(routing ? "pipe-routed" : "pipe", routing));
    INFO(px.log_tail());
    if (routing) {
      REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
    }
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    for (int round = 0; round < 20; ++round) {
      CAPTURE(round);
      error_before_sync(c);
      REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
      CHECK(c.query_value("SELECT 3") == "3");
    }
    CHECK(px.log().find("unexpected") == std::string::npos);
    CHECK(px.log().find("banned") == std::string::npos);
    CHECK(px.running());
  }
}

TEST_CASE("psycopg 3 pipelines with an error in the middle keep their connection") {
  PgmuxProcess px(test_env(), pipelined("pipe-psycopg", true));
  INFO(px.log_tail());
  const std::string script =
      std::string(PGMUX_SOURCE_DIR) + "/tests/integration/psycopg_pipeline.py";
  const CommandResult r = run_command(
      {.argv = {"/usr/bin/python3", script, px.conninfo("app", "secret"),
                "host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                    " user=app password=secret dbname=app sslmode=disable",
                "40"},
       .timeout = std::chrono::seconds(120)});
  INFO("psycopg pipeline: ", r.describe());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("ok: 40 rounds") != std::string::npos);
  MESSAGE(r.out);
  CHECK(px.log().find("unexpected") == std::string::npos);
  CHECK(px.log().find("banned") == std::string::npos);
}
