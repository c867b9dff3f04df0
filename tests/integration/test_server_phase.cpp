// SHOW CLIENTS server_phase: what each client's session is doing with its server, as the
// session engine's state says, seen from the admin console while real clients hold servers.
#include <doctest/doctest.h>

#include <map>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

// The server_phase of the client whose application_name is `app` ("(missing)" if none).
std::string phase_of(const PgmuxProcess& px, const std::string& app) {
  for (const auto& row : console_rows(px, "SHOW CLIENTS")) {
    if (row.at("application_name") == app) return row.at("server_phase");
  }
  return "(missing)";
}

bool phase_becomes(const PgmuxProcess& px, const std::string& app, const std::string& want) {
  return wait_until([&] { return phase_of(px, app) == want; }, milliseconds(5000));
}

}  // namespace

TEST_CASE("SHOW CLIENTS server_phase follows a transaction, a running query and a COPY") {
  PgmuxProcess px(test_env(), {.name = "phase", .mode = "transaction"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret", "app", "application_name=phased"));
  REQUIRE(c.ok());
  c.run("DROP TABLE IF EXISTS it_phase_copy");
  c.run("CREATE TABLE it_phase_copy(x int)");
  CHECK(phase_becomes(px, "phased", ""));  // between transactions: no server held

  c.run("BEGIN");
  CHECK(phase_becomes(px, "phased", "held"));  // idle in its transaction

  REQUIRE(PQsendQuery(c.get(), "SELECT pg_sleep(3)") == 1);
  CHECK(phase_becomes(px, "phased", "request"));  // the server owes the answer
  const PgResult slept = c.collect(true, milliseconds(10000));
  CHECK(slept.ok());
  CHECK(phase_becomes(px, "phased", "held"));

  const PgResult copy = c.exec("COPY it_phase_copy FROM STDIN");
  REQUIRE_MESSAGE(copy.status() == PGRES_COPY_IN, copy.describe());
  CHECK(phase_becomes(px, "phased", "copy"));
  REQUIRE(PQputCopyData(c.get(), "1\n2\n", 4) == 1);
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  const PgResult copied = c.next_result();
  CHECK(copied.status() == PGRES_COMMAND_OK);
  CHECK_FALSE(c.next_result());
  CHECK(phase_becomes(px, "phased", "held"));

  c.run("COMMIT");
  CHECK(phase_becomes(px, "phased", ""));
  CHECK(c.query_value("SELECT count(*) FROM it_phase_copy") == "2");
  c.run("DROP TABLE it_phase_copy");
}

TEST_CASE("SHOW CLIENTS server_phase: a session-pooled client holds its server between requests") {
  PgmuxProcess px(test_env(), {.name = "phase-session", .mode = "session"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret", "app", "application_name=kept"));
  REQUIRE(c.ok());
  CHECK(c.query_value("SELECT 1") == "1");
  CHECK(phase_becomes(px, "kept", "held"));
}
