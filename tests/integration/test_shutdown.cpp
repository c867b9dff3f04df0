// Signals: SIGTERM drains (running queries finish, no new clients), SIGINT stops at once.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <csignal>
#include <thread>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

namespace {

bool connection_refused(std::uint16_t port) {
  try {
    RawClient probe(port);
    return false;
  } catch (const std::exception&) {
    return true;
  }
}

}  // namespace

TEST_CASE("SIGTERM lets a running query finish, refuses new clients and exits after the last") {
  PgmuxProcess px(test_env(), {.name = "sigterm", .shutdown_timeout_ms = 20000});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT 1") == "1");

  const auto start = Clock::now();
  REQUIRE(PQsendQuery(c.get(), "SELECT pg_sleep(1), 'slept'") == 1);
  std::this_thread::sleep_for(milliseconds(200));
  px.send_signal(SIGTERM);
  REQUIRE(px.wait_for_log("SIGTERM", milliseconds(5000)));
  std::this_thread::sleep_for(milliseconds(100));

  CHECK(connection_refused(px.port()));
  PgConn late(px.conninfo("app", "secret"));
  CHECK_FALSE(late.ok());

  const PgResult r = c.next_result();
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
  CHECK(r.value(0, 1) == "slept");
  CHECK_FALSE(c.next_result());
  CHECK(seconds_since(start) >= 0.95);
  // Still draining while the client stays connected.
  std::this_thread::sleep_for(milliseconds(300));
  CHECK(px.running());

  c.close();
  const auto closed_at = Clock::now();
  const auto status = px.wait_exit(milliseconds(5000));
  REQUIRE_MESSAGE(status.has_value(), "pgmux still running 5 s after the last client left");
  CAPTURE(describe_wait_status(*status));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(seconds_since(closed_at) < 3.0);
}

TEST_CASE("SIGINT stops pgmux at once even with clients connected") {
  PgmuxProcess px(test_env(), {.name = "sigint", .shutdown_timeout_ms = 20000});
  INFO(px.log_tail());
  PgConn idle(px.conninfo("app", "secret"));
  PgConn busy(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(idle.ok(), idle.error());
  REQUIRE_MESSAGE(busy.ok(), busy.error());
  REQUIRE(PQsendQuery(busy.get(), "SELECT pg_sleep(3)") == 1);
  std::this_thread::sleep_for(milliseconds(200));

  const auto start = Clock::now();
  px.send_signal(SIGINT);
  const auto status = px.wait_exit(milliseconds(2000));
  REQUIRE_MESSAGE(status.has_value(), "pgmux still running 2 s after SIGINT");
  CAPTURE(describe_wait_status(*status));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(seconds_since(start) < 2.0);
  // The clients see their connections gone.
  const PgResult r = busy.next_result();
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK_FALSE(idle.exec("SELECT 1").ok());
}
