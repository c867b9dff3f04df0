// Pool exhaustion (query_wait_timeout_ms), FIFO hand-over, and max_client_conn.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

TEST_CASE(
    "with the pool exhausted a new client's query fails after query_wait_timeout_ms (53300)") {
  PgmuxProcess px(test_env(), {.name = "exhaust", .pool_size = 2, .query_wait_timeout_ms = 1000});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  // A session takes its server at its first query and keeps it until it leaves.
  const std::string a_server = a.query_value("SELECT pg_backend_pid()");
  CHECK(b.query_value("SELECT pg_backend_pid()") != a_server);

  // Login needs no server, so the third client gets in; its first query waits in the queue.
  PgConn third(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(third.ok(), third.error());
  const auto start = Clock::now();
  const PgResult r = third.exec("SELECT 1");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "53300", r.describe());
  CHECK_MESSAGE(r.error().find("query_wait_timeout") != std::string::npos, r.describe());
  CHECK(took >= 0.9);
  CHECK(took < 5.0);
  // The error is FATAL: pgmux closed the connection.
  CHECK(PQstatus(third.get()) == CONNECTION_BAD);
  // The held connections are unaffected.
  CHECK(a.query_value("SELECT 'a ok'") == "a ok");
  CHECK(b.query_value("SELECT 'b ok'") == "b ok");

  // Closing one held connection lets a new client in, on the freed server connection.
  a.close();
  PgConn d(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(d.ok(), d.error());
  CHECK(d.query_value("SELECT pg_backend_pid()") == a_server);
}

TEST_CASE("the SQLSTATE of a pool wait timeout is 53300 (raw md5 client)") {
  PgmuxProcess px(test_env(),
                  {.name = "exhaust53300", .pool_size = 2, .query_wait_timeout_ms = 1000});
  INFO(px.log_tail());
  PgConn a(px.conninfo("md5user", "md5pass"));
  PgConn b(px.conninfo("md5user", "md5pass"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  a.run("SELECT 1");
  b.run("SELECT 1");
  const auto start = Clock::now();
  const RawLogin raw = raw_login(px.port(), "md5user", "app", "md5pass",
                                 std::chrono::milliseconds(10000), "SELECT 1");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK(raw.ready);
  CHECK_FALSE(raw.query_done);
  CHECK_MESSAGE(raw.sqlstate == "53300", raw.message);
  CHECK(raw.message.find("query_wait_timeout") != std::string::npos);
  CHECK(took >= 0.9);
  b.close();
  const RawLogin after = raw_login(px.port(), "md5user", "app", "md5pass",
                                   std::chrono::milliseconds(10000), "SELECT 1");
  CHECK_MESSAGE(after.query_done, after.sqlstate, " ", after.message);
}

TEST_CASE("waiting clients get a freed server connection in FIFO order") {
  PgmuxProcess px(test_env(), {.name = "fifo", .pool_size = 1, .query_wait_timeout_ms = 15000});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  a.run("SELECT 1");  // takes the only server connection
  REQUIRE(pool_stat(px, "sv_active") == 1);

  std::atomic<int> next_rank{0};
  struct Outcome {
    int rank = -1;
    std::string error, server_pid;
  };
  Outcome b, c;
  const std::string info = px.conninfo("app", "secret");
  auto client = [&](Outcome& out) {
    PgConn conn(info);
    if (!conn.ok()) {
      out.error = conn.error();
      return;
    }
    try {
      // Waits in the pool queue until a server connection is free.
      out.server_pid = conn.query_value("SELECT pg_backend_pid()");
      out.rank = next_rank++;  // order in which the clients were served
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    std::this_thread::sleep_for(milliseconds(200));  // hold the server a moment
  };
  {
    std::jthread tb([&] { client(b); });
    // B is queued before C starts: wait until pgmux reports one waiting client.
    REQUIRE(wait_until([&] { return pool_stat(px, "cl_waiting") == 1; }, milliseconds(10000)));
    std::jthread tc([&] { client(c); });
    REQUIRE(wait_until([&] { return pool_stat(px, "cl_waiting") == 2; }, milliseconds(10000)));
    a.close();
  }  // joins B and C
  CHECK_MESSAGE(b.error.empty(), b.error);
  CHECK_MESSAGE(c.error.empty(), c.error);
  CHECK(b.rank == 0);
  CHECK(c.rank == 1);
  CHECK(b.server_pid == c.server_pid);  // one server connection, handed from B to C
}

TEST_CASE("max_client_conn refuses the client over the limit and admits one after a leave") {
  PgmuxProcess px(test_env(), {.name = "maxclient", .max_client_conn = 3});
  INFO(px.log_tail());
  PgConn c1(px.conninfo("app", "secret"));
  PgConn c2(px.conninfo("app", "secret"));
  PgConn c3(px.conninfo("md5user", "md5pass"));
  REQUIRE_MESSAGE(c1.ok(), c1.error());
  REQUIRE_MESSAGE(c2.ok(), c2.error());
  REQUIRE_MESSAGE(c3.ok(), c3.error());

  PgConn c4(px.conninfo("app", "secret"));
  CHECK_FALSE(c4.ok());
  CHECK_MESSAGE(c4.error().find("max_client_conn") != std::string::npos, c4.error());
  const RawLogin raw = raw_login(px.port(), "md5user", "app", "md5pass");
  CHECK_FALSE(raw.ready);
  CHECK_MESSAGE(raw.sqlstate == "53300", raw.message);
  // The admin console counts as a client too.
  PgConn admin = admin_console(px);
  CHECK_FALSE(admin.ok());

  // Everyone admitted still works.
  CHECK(c1.query_value("SELECT 1") == "1");
  CHECK(c3.query_value("SELECT current_user") == "md5user");

  c2.close();
  // pgmux notices the departure asynchronously: retry (bounded) until the new client is in.
  std::string last_error;
  PgConn c5;
  const bool admitted = wait_until(
      [&] {
        c5 = PgConn(px.conninfo("app", "secret"));
        if (!c5.ok()) last_error = c5.error();
        return c5.ok();
      },
      milliseconds(5000));
  CHECK_MESSAGE(admitted, last_error);
  if (admitted) CHECK(c5.query_value("SELECT 'admitted'") == "admitted");
  // …and the limit still holds.
  PgConn c6(px.conninfo("app", "secret"));
  CHECK_FALSE(c6.ok());
}

TEST_CASE("a pool made smaller by RELOAD closes the connections beyond its new size") {
  PgmuxProcess px(test_env(), {.name = "shrink", .pool_size = 3, .mode = "transaction"});
  INFO(px.log_tail());
  std::vector<std::unique_ptr<PgConn>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<PgConn>(px.conninfo("app", "secret")));
    REQUIRE(clients.back()->ok());
    clients.back()->run("BEGIN");  // each holds its own server
    clients.back()->run("SELECT 1");
  }
  auto app_servers = [&] {
    int n = 0;
    for (const auto& row : console_rows(px, "SHOW SERVERS")) n += row.at("user") == "app";
    return n;
  };
  CHECK(app_servers() == 3);
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  std::string smaller = px.config_text();
  REQUIRE(smaller.find("pool_size = 3\n") != std::string::npos);
  smaller.replace(smaller.find("pool_size = 3\n"), 14, "pool_size = 1\n");
  px.rewrite_config(smaller);
  // A per-database pool_size wins over default_pool_size, so the file is what changes here.
  CHECK(admin.exec("RELOAD").status() == PGRES_COMMAND_OK);
  for (auto& c : clients) c->run("COMMIT");
  // Handed back one by one: the first two are beyond the new size and close.
  CHECK(wait_until([&] { return app_servers() == 1; }, milliseconds(3000)));
  CHECK(clients[0]->query_value("SELECT 'still served'") == "still served");
  CHECK(app_servers() == 1);
}
