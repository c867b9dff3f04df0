// Server connection limits beyond one pool's size: reserve_pool_size, max_db_connections,
// max_user_connections; the server connection lifecycle: server_lifetime_ms,
// server_idle_timeout_ms, server_connect_timeout_ms, server_login_retry_ms, primary_wait_ms.
// Counts are read on the primary itself (pg_stat_activity), not from pgmux.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <set>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

namespace {

PgmuxOptions tx_limits(std::string name, int pool_size, std::string pool_toml,
                       std::string extra = "") {
  return {.name = std::move(name),
          .pool_size = pool_size,
          .query_wait_timeout_ms = 1500,
          .mode = "transaction",
          .pool_toml = std::move(pool_toml),
          .extra_toml = std::move(extra)};
}

// Opens a client and starts a transaction that holds a server connection; returns its pid.
std::string hold_server(PgConn& c) {
  c.run("BEGIN");
  return c.query_value("SELECT pg_backend_pid()");
}

PgConn watch_primary_from_zero() {
  PgConn w = direct_primary();
  REQUIRE_MESSAGE(w.ok(), w.error());
  // Earlier tests' server connections close when their pgmux stops.
  wait_for_server_connections(w, 0, milliseconds(5000));
  wait_for_server_connections(w, 0, milliseconds(5000), "pwuser");
  return w;
}

// A TCP port that accepts connections (the kernel completes the handshake into the backlog)
// but never answers: a server that hangs during login.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

std::string database_at(const std::string& name, std::uint16_t port) {
  return "[databases." + name +
         "]\ndbname = \"app\"\nprimary = { host = \"127.0.0.1\", port = " + std::to_string(port) +
         " }\n";
}

}  // namespace

TEST_CASE(
    "reserve_pool_size: after reserve_pool_timeout_ms a waiting client gets an extra "
    "connection, which closes when nobody waits") {
  PgmuxProcess px(test_env(),
                  tx_limits("reserve", 2, "reserve_pool_size = 1\nreserve_pool_timeout_ms = 300"));
  INFO(px.log_tail());
  PgConn watcher = watch_primary_from_zero();
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn c(px.conninfo("app", "secret"));
  PgConn d(px.conninfo("app", "secret"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  REQUIRE(d.ok());
  const std::string pa = hold_server(a);
  const std::string pb = hold_server(b);

  // The pool is spent: c waits reserve_pool_timeout_ms, then runs on a reserve connection.
  auto start = Clock::now();
  const std::string pc = c.query_value("SELECT pg_backend_pid()");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK(took >= 0.25);
  CHECK(took < 1.4);  // well before query_wait_timeout_ms
  CHECK(pc != pa);
  CHECK(pc != pb);
  CHECK(px.wait_for_log("opening a reserve connection", milliseconds(2000)));
  // It came back with nobody waiting: closed, the pool is at its size again.
  CHECK(wait_for_server_connections(watcher, 2, milliseconds(3000)));

  // Pool and reserve both spent: the next client times out, told which limits were hit.
  hold_server(c);
  CHECK(server_connections(watcher) == 3);
  start = Clock::now();
  const PgResult r = d.exec("SELECT 1");
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "53300", r.describe());
  CHECK_MESSAGE(r.error().find("query_wait_timeout_ms (1500 ms)") != std::string::npos,
                r.describe());
  CHECK_MESSAGE(r.error().find("all 2 connections of the pool are in use, and 1 of "
                               "reserve_pool_size 1") != std::string::npos,
                r.describe());
  CHECK(seconds_since(start) >= 1.4);
  CHECK(server_connections(watcher) == 3);
  for (PgConn* h : {&a, &b, &c}) h->run("COMMIT");
  CHECK(wait_for_server_connections(watcher, 2, milliseconds(3000)));
}

TEST_CASE(
    "max_db_connections caps the servers of all users of a database; idle ones of "
    "another user are closed to make room") {
  PgmuxProcess px(test_env(), tx_limits("max-db", 3, "max_db_connections = 3"));
  INFO(px.log_tail());
  PgConn watcher = watch_primary_from_zero();
  PgConn a1(px.conninfo("app", "secret"));
  PgConn a2(px.conninfo("app", "secret"));
  PgConn p1(px.conninfo("pwuser", "pwpass"));
  PgConn p2(px.conninfo("pwuser", "pwpass"));
  REQUIRE(a1.ok());
  REQUIRE(a2.ok());
  REQUIRE(p1.ok());
  REQUIRE(p2.ok());
  hold_server(a1);
  hold_server(a2);
  hold_server(p1);
  CHECK(server_connections(watcher) + server_connections(watcher, "pwuser") == 3);

  // pwuser's pool has room (size 3) but the database does not.
  const PgResult r = p2.exec("SELECT 1");
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "53300", r.describe());
  CHECK_MESSAGE(r.error().find("max_db_connections of database \"app\" is reached (3 server "
                               "connections)") != std::string::npos,
                r.describe());

  // a1 finishes: its connection idles in app's pool; pwuser's next client takes the unit by
  // having pgmux close that idle connection instead of waiting for server_idle_timeout_ms.
  a1.run("COMMIT");
  PgConn p3(px.conninfo("pwuser", "pwpass"));
  REQUIRE(p3.ok());
  auto start = Clock::now();
  CHECK(p3.query_value("SELECT current_user") == "pwuser");
  CHECK(seconds_since(start) < 1.0);
  CHECK(server_connections(watcher) == 1);
  CHECK(server_connections(watcher, "pwuser") == 2);

  // The other way round: an app client queued behind the cap gets the unit as soon as a
  // pwuser connection comes back, not at its timeout.
  hold_server(p3);
  PgConn a3(px.conninfo("app", "secret"));
  REQUIRE(a3.ok());
  auto waiting = std::async(std::launch::async, [&] {
    const auto t0 = Clock::now();
    const std::string who = a3.query_value("SELECT current_user");
    return std::make_pair(who, seconds_since(t0));
  });
  std::this_thread::sleep_for(milliseconds(400));
  p3.run("COMMIT");
  const auto [who, waited] = waiting.get();
  CAPTURE(waited);
  CHECK(who == "app");
  CHECK(waited >= 0.35);
  CHECK(waited < 1.3);  // before query_wait_timeout_ms (1.5 s)
  CHECK(server_connections(watcher) + server_connections(watcher, "pwuser") <= 3);
  for (PgConn* h : {&a2, &p1}) h->run("COMMIT");
}

TEST_CASE("max_user_connections caps one user's servers across databases") {
  const auto port = test_env().cluster().primary_port();
  PgmuxProcess px(test_env(), tx_limits("max-user", 3, "max_user_connections = 2",
                                        database_at("app2", port) + "pool_size = 3\n"));
  INFO(px.log_tail());
  PgConn watcher = watch_primary_from_zero();
  PgConn a(px.conninfo("app", "secret", "app"));
  PgConn b(px.conninfo("app", "secret", "app2"));
  PgConn c(px.conninfo("app", "secret", "app2"));
  PgConn other(px.conninfo("pwuser", "pwpass", "app2"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  REQUIRE(other.ok());
  hold_server(a);
  hold_server(b);
  const PgResult r = c.exec("SELECT 1");
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "53300", r.describe());
  CHECK_MESSAGE(r.error().find("max_user_connections of user \"app\" is reached (2 server "
                               "connections)") != std::string::npos,
                r.describe());
  CHECK(server_connections(watcher) == 2);
  // Another user has its own budget.
  CHECK(other.query_value("SELECT current_user") == "pwuser");
  a.run("COMMIT");
  b.run("COMMIT");
}

TEST_CASE("server_lifetime_ms and server_idle_timeout_ms retire server connections") {
  SUBCASE("a connection older than its (jittered) lifetime is replaced") {
    PgmuxProcess px(test_env(), tx_limits("lifetime", 1, "server_lifetime_ms = 400"));
    INFO(px.log_tail());
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE(c.ok());
    std::set<std::string> pids;
    for (int i = 0; i < 40; ++i) {  // 2 s of one query every 50 ms
      pids.insert(c.query_value("SELECT pg_backend_pid()"));
      std::this_thread::sleep_for(milliseconds(50));
    }
    CAPTURE(pids.size());
    CHECK(pids.size() >= 4);  // each lives 320–400 ms
    CHECK(pids.size() <= 8);
    CHECK(px.wait_for_log("closing: server_lifetime_ms reached", milliseconds(1000)));
  }
  SUBCASE("an idle connection closes after server_idle_timeout_ms") {
    PgmuxProcess px(test_env(), tx_limits("idle-timeout", 2, "server_idle_timeout_ms = 500"));
    INFO(px.log_tail());
    PgConn watcher = watch_primary_from_zero();
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE(c.ok());
    CHECK(c.query_value("SELECT 1") == "1");
    CHECK(server_connections(watcher) == 1);
    // The sweep runs every second: closed within timeout + 1 s (+ slack).
    CHECK(wait_for_server_connections(watcher, 0, milliseconds(3000)));
    CHECK(px.wait_for_log("closing: server_idle_timeout_ms reached", milliseconds(1000)));
    CHECK(c.query_value("SELECT 2") == "2");  // the client is unaffected
  }
}

TEST_CASE("server_connect_timeout_ms bounds a server that accepts but never answers") {
  SilentServer silent;
  // primary_wait_ms = 0: the client gets the first failure instead of waiting for a retry.
  PgmuxProcess px(test_env(), tx_limits("connect-timeout", 2,
                                        "server_connect_timeout_ms = 500\nprimary_wait_ms = 0",
                                        database_at("hangs", silent.port())));
  INFO(px.log_tail());
  const auto start = Clock::now();
  const RawLogin r =
      raw_login(px.port(), "md5user", "hangs", "md5pass", milliseconds(5000), "SELECT 1");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK_FALSE(r.query_done);
  CHECK_MESSAGE(r.sqlstate == "08006", r.message);
  CHECK_MESSAGE(r.message.find("server_connect_timeout_ms") != std::string::npos, r.message);
  CHECK(took >= 0.45);
  CHECK(took < 3.0);
}

TEST_CASE(
    "server_login_retry_ms: after a failed server login, clients get the failure at "
    "once until the window passes") {
  const std::uint16_t dead_port = pick_free_port();
  PgmuxProcess px(test_env(),
                  tx_limits("login-retry", 2, "server_login_retry_ms = 1500\nprimary_wait_ms = 0",
                            database_at("down", dead_port)));
  INFO(px.log_tail());
  const RawLogin first =
      raw_login(px.port(), "md5user", "down", "md5pass", milliseconds(5000), "SELECT 1");
  CHECK_FALSE(first.query_done);
  CHECK_MESSAGE(first.sqlstate == "08006", first.message);
  CHECK_MESSAGE(first.message.find("could not connect") != std::string::npos, first.message);
  CHECK(first.message.find("server_login_retry_ms") == std::string::npos);

  // Inside the window pgmux does not try the server again: it repeats the failure.
  const RawLogin second =
      raw_login(px.port(), "md5user", "down", "md5pass", milliseconds(5000), "SELECT 1");
  CHECK_FALSE(second.query_done);
  CHECK_MESSAGE(second.sqlstate == "08006", second.message);
  CHECK_MESSAGE(second.message.find("server login has been failing") != std::string::npos,
                second.message);
  CHECK_MESSAGE(second.message.find("server_login_retry_ms (1500 ms)") != std::string::npos,
                second.message);
  CHECK(px.wait_for_log("new connections wait server_login_retry_ms", milliseconds(1000)));

  // After it, a real attempt again. Other databases were never affected.
  std::this_thread::sleep_for(milliseconds(1700));
  const RawLogin third =
      raw_login(px.port(), "md5user", "down", "md5pass", milliseconds(5000), "SELECT 1");
  CHECK_MESSAGE(third.message.find("could not connect") != std::string::npos, third.message);
  CHECK_MESSAGE(third.message.find("has been failing") == std::string::npos, third.message);
  const RawLogin healthy =
      raw_login(px.port(), "md5user", "app", "md5pass", milliseconds(5000), "SELECT 1");
  CHECK_MESSAGE(healthy.query_done, healthy.sqlstate, " ", healthy.message);
}

TEST_CASE("primary_wait_ms: a client waits that long for a primary that is down, then fails") {
  const std::uint16_t dead_port = pick_free_port();
  PgmuxProcess px(test_env(), tx_limits("primary-wait", 2,
                                        "server_login_retry_ms = 200\nprimary_wait_ms = 1500",
                                        database_at("down", dead_port)));
  INFO(px.log_tail());
  const auto start = Clock::now();
  const RawLogin r =
      raw_login(px.port(), "md5user", "down", "md5pass", milliseconds(8000), "SELECT 1");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK_FALSE(r.query_done);
  CHECK_MESSAGE(r.sqlstate == "08006", r.message);
  CHECK_MESSAGE(r.message.find("primary_wait_ms, 1500 ms") != std::string::npos, r.message);
  CHECK(took >= 1.4);
  CHECK(took < 5.0);
  // Another database of the same pgmux is served meanwhile and after.
  const RawLogin healthy =
      raw_login(px.port(), "md5user", "app", "md5pass", milliseconds(5000), "SELECT 1");
  CHECK_MESSAGE(healthy.query_done, healthy.sqlstate, " ", healthy.message);
}
