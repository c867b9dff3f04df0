// Query cancellation through pgmux's own cancel keys.
#include <doctest/doctest.h>

#include <thread>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

TEST_CASE("PQcancel on a pgmux connection cancels a running pg_sleep(30) with 57014") {
  PgmuxProcess px(test_env(), {.name = "cancel"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  const std::string server_pid = c.query_value("SELECT pg_backend_pid()");
  const PgCancel cancel(c);
  REQUIRE(cancel.valid());

  std::string cancel_error = "not sent";
  const auto start = Clock::now();
  {
    std::jthread canceller([&] {
      std::this_thread::sleep_for(milliseconds(500));
      cancel_error = cancel.cancel();
    });
    const PgResult r = c.exec("SELECT pg_sleep(30)");
    const double took = seconds_since(start);
    CAPTURE(took);
    CHECK(r.status() == PGRES_FATAL_ERROR);
    CHECK(r.sqlstate() == "57014");
    CHECK(r.error().find("canceling statement due to user request") != std::string::npos);
    CHECK(took >= 0.4);
    CHECK(took < 5.0);
  }
  CHECK_MESSAGE(cancel_error.empty(), cancel_error);
  CHECK(c.tx_status() == PQTRANS_IDLE);
  CHECK(c.query_value("SELECT 'works after cancel'") == "works after cancel");
  CHECK(c.query_value("SELECT pg_backend_pid()") == server_pid);

  // The key stays valid for later queries of the same session.
  const PgCancel again(c);
  std::jthread second([&] {
    std::this_thread::sleep_for(milliseconds(300));
    (void)again.cancel();
  });
  const auto start2 = Clock::now();
  const PgResult r2 = c.exec("SELECT pg_sleep(30)");
  CHECK(r2.sqlstate() == "57014");
  CHECK(seconds_since(start2) < 5.0);
}

TEST_CASE("a cancel request with a wrong key does not disturb running queries") {
  PgmuxProcess px(test_env(), {.name = "cancelwrong"});
  INFO(px.log_tail());
  PgConn victim(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(victim.ok(), victim.error());
  const int client_pid = PQbackendPID(victim.get());  // pgmux's key, not the server's pid
  const int server_pid = std::stoi(victim.query_value("SELECT pg_backend_pid()"));

  const auto start = Clock::now();
  REQUIRE(PQsendQuery(victim.get(), "SELECT pg_sleep(1), 'finished'") == 1);
  std::this_thread::sleep_for(milliseconds(200));
  // The right pid with wrong secrets, an unknown pid, and the server's own pid (which only
  // PostgreSQL knows a secret for): pgmux must drop them all.
  const std::vector<std::pair<std::int32_t, std::int32_t>> keys = {
      {client_pid, 0}, {client_pid, 12345}, {client_pid + 1, 1}, {server_pid, 0}};
  for (const auto& [pid, secret] : keys) {
    RawClient raw(px.port());
    REQUIRE(raw.send(cancel_request_packet(pid, secret)));
    std::string reply;
    CHECK(raw.read_until_closed(reply, milliseconds(5000)) == RawClient::Status::closed);
    CHECK(reply.empty());  // a cancel request gets no answer
  }
  const PgResult r = victim.next_result();
  const double took = seconds_since(start);
  CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
  CHECK(r.value(0, 1) == "finished");
  CHECK_FALSE(victim.next_result());
  CHECK(took >= 0.95);
  CHECK(took < 5.0);
  CHECK(victim.query_value("SELECT 'alive'") == "alive");
}
