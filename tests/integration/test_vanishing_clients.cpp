// Clients that vanish or stop reading free what they hold: a client that closes its
// connection mid-request has that request cancelled on the server (closing the server
// connection alone would leave the backend running it for nobody), and one that stops reading
// the answer is closed after client_write_timeout_ms so that it cannot keep its server.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <string>
#include <thread>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

namespace {

PgmuxOptions options(std::string name, int pool_size, std::string pool_toml = "") {
  return {.name = std::move(name),
          .pool_size = pool_size,
          .query_wait_timeout_ms = 20000,
          .mode = "transaction",
          .pool_toml = std::move(pool_toml)};
}

// Backends on the primary running a statement whose text holds `marker`.
std::string running(PgConn& primary, const std::string& marker) {
  return primary.query_value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%" + marker +
                             "%' AND state = 'active' AND pid <> pg_backend_pid()");
}

}  // namespace

TEST_CASE("a client that vanishes mid-request has its query cancelled on the server") {
  PgmuxProcess px(test_env(), options("vanish", 2));
  INFO(px.log_tail());
  // A raw client sends a minute-long query and closes its socket after half a second.
  const RawLogin gone = raw_login(px.port(), "md5user", "app", "md5pass", milliseconds(500),
                                  "SELECT pg_sleep(60) /* it vanishes */");
  CHECK(gone.ready);
  CHECK_FALSE(gone.query_done);
  // Closing the server connection alone would leave the backend sleeping for the minute.
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  CHECK(wait_until([&] { return running(p, "it vanishes") == "0"; }, milliseconds(5000)));
  CHECK(px.wait_for_log("cancelling its request", milliseconds(1000)));
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT 'served'") == "served");
}

TEST_CASE("a client that stops reading its answer is closed and its server freed") {
  PgmuxProcess px(test_env(), options("stops-reading", 1, "client_write_timeout_ms = 1000"));
  INFO(px.log_tail());
  // libpq sends the query and is never asked to read: the answer (hundreds of MB) fills the
  // socket buffers on the way and pgmux's forward to this client stops.
  PgConn stuck(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(stuck.ok(), stuck.error());
  REQUIRE(PQsendQuery(
              stuck.get(),
              "SELECT repeat('x', 1000) /* never read */ FROM generate_series(1, 300000)") == 1);
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  CHECK(wait_until([&] { return running(p, "never read") == "1"; }, milliseconds(5000)));
  // The pool's one server is held until client_write_timeout_ms has passed: then the next
  // client gets it and the stuck query is cancelled.
  const auto start = Clock::now();
  PgConn next(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(next.ok(), next.error());
  CHECK(next.query_value("SELECT 'served'") == "served");
  const double waited = seconds_since(start);
  MESSAGE("the next client was served ", waited, " s after the stuck one stopped reading");
  CHECK(waited < 10.0);
  CHECK(px.wait_for_log("stopped reading", milliseconds(1000)));
  CHECK(wait_until([&] { return running(p, "never read") == "0"; }, milliseconds(5000)));
}
