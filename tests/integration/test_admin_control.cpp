// Admin console control commands that change what runs: RECONNECT, WAIT_CLOSE, KILL db,
// SUSPEND, SET, SHOW MEM and the SHUTDOWN variants, observed through real clients and the
// primary's own pg_stat_activity.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"

using namespace pgmux::it;

namespace {

bool backend_alive(PgConn& watcher, const std::string& pid) {
  return watcher.query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "1";
}

std::string server_column(const PgmuxProcess& px, const std::string& pid,
                          const std::string& column) {
  for (const auto& row : console_rows(px, "SHOW SERVERS")) {
    if (row.at("remote_pid") == pid) return row.at(column);
  }
  return "(gone)";
}

// Whether an asynchronous command on `c` is still running after `wait`.
bool still_busy(PgConn& c, milliseconds wait) {
  std::this_thread::sleep_for(wait);
  PQconsumeInput(c.get());
  return PQisBusy(c.get()) == 1;
}

}  // namespace

TEST_CASE("RECONNECT closes idle servers now and busy ones when released; WAIT_CLOSE; KILL db") {
  PgmuxProcess px(
      test_env(),
      {.name = "reconnect", .pool_size = 2, .query_wait_timeout_ms = 10000, .mode = "transaction"});
  INFO(px.log_tail());
  PgConn watcher = direct_primary();
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  PgConn waiter = admin_console(px);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(admin.ok());
  REQUIRE(waiter.ok());
  a.run("BEGIN");
  const std::string busy_pid = a.query_value("SELECT pg_backend_pid()");
  const std::string idle_pid = b.query_value("SELECT pg_backend_pid()");
  REQUIRE(busy_pid != idle_pid);
  CHECK(server_column(px, busy_pid, "close_needed") == "0");

  CHECK(admin.exec("RECONNECT app").status() == PGRES_COMMAND_OK);
  // The idle connection is closed at once, the busy one is marked and keeps serving a.
  CHECK(wait_until([&] { return !backend_alive(watcher, idle_pid); }, milliseconds(3000)));
  CHECK(server_column(px, idle_pid, "state") == "(gone)");
  CHECK(server_column(px, busy_pid, "close_needed") == "1");
  CHECK(a.query_value("SELECT pg_backend_pid()") == busy_pid);

  // WAIT_CLOSE returns only once the marked connection is gone: after a's COMMIT.
  REQUIRE(PQsendQuery(waiter.get(), "WAIT_CLOSE app") == 1);
  CHECK(still_busy(waiter, milliseconds(400)));
  a.run("COMMIT");
  const PgResult waited = waiter.collect(true, milliseconds(3000));
  CHECK_MESSAGE(waited.status() == PGRES_COMMAND_OK, waited.describe());
  CHECK(wait_until([&] { return !backend_alive(watcher, busy_pid); }, milliseconds(3000)));
  const std::string fresh_pid = a.query_value("SELECT pg_backend_pid()");
  CHECK(fresh_pid != busy_pid);
  CHECK(fresh_pid != idle_pid);
  CHECK(admin.exec("RECONNECT nodb").sqlstate() == "3D000");

  // KILL app: its clients are told and closed, its servers closed; new clients wait for RESUME.
  CHECK(admin.exec("KILL app").status() == PGRES_COMMAND_OK);
  const PgResult killed = a.exec("SELECT 1");
  CHECK_FALSE(killed.ok());
  CHECK_MESSAGE(killed.describe().find("administrator command") != std::string::npos,
                killed.describe());
  CHECK_FALSE(b.exec("SELECT 1").ok());
  CHECK(wait_until([&] { return server_connections(watcher) == 0; }, milliseconds(3000)));
  const auto pools = pool_row(px, "app", "app");
  REQUIRE(pools.has_value());
  CHECK(pools->at("sv_active") == "0");
  CHECK(pools->at("sv_idle") == "0");
  PgConn late(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(late.ok(), late.error());  // the login itself needs no server
  REQUIRE(PQsendQuery(late.get(), "SELECT 'after resume'") == 1);
  CHECK(still_busy(late, milliseconds(400)));
  CHECK(admin.exec("RESUME app").status() == PGRES_COMMAND_OK);
  const PgResult resumed = late.collect(true, milliseconds(5000));
  CHECK(resumed.value(0, 0) == "after resume");
  CHECK(admin.exec("KILL").sqlstate() == "42601");
  CHECK(admin.exec("KILL nodb").sqlstate() == "3D000");
}

TEST_CASE("SUSPEND waits for transactions and holds new connections until RESUME") {
  PgmuxProcess px(test_env(), {.name = "suspend", .mode = "transaction"});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  REQUIRE(a.ok());
  REQUIRE(admin.ok());
  a.run("BEGIN");
  a.run("SELECT 1");
  REQUIRE(PQsendQuery(admin.get(), "SUSPEND") == 1);
  CHECK(still_busy(admin, milliseconds(300)));
  a.run("COMMIT");
  const PgResult suspended = admin.collect(true, milliseconds(3000));
  CHECK_MESSAGE(suspended.status() == PGRES_COMMAND_OK, suspended.describe());
  CHECK(admin.exec("SUSPEND").sqlstate() == "55000");

  // A new client's connection waits in the listen backlog.
  std::atomic<bool> connected{false};
  std::string late_error;
  const auto start = Clock::now();
  std::thread late_client([&] {
    PgConn late(px.conninfo("app", "secret", "app", "connect_timeout=10"));
    if (late.ok()) {
      connected = late.query_value("SELECT 'in'") == "in";
    } else {
      late_error = late.error();
    }
  });
  std::this_thread::sleep_for(milliseconds(500));
  CHECK_FALSE(connected.load());
  std::map<std::string, std::string> state;
  {
    const PgResult r = admin.exec("SHOW STATE");
    for (int i = 0; i < r.rows(); ++i) state[r.value(i, 0)] = r.value(i, 1);
  }
  CHECK(state["suspended"] == "yes");
  CHECK(state["active"] == "no");
  CHECK(admin.exec("RESUME").status() == PGRES_COMMAND_OK);
  late_client.join();
  CHECK_MESSAGE(connected.load(), late_error);
  CHECK(seconds_since(start) >= 0.5);
  CHECK(a.query_value("SELECT 'a again'") == "a again");

  // A SUSPEND left behind by a lost console session: SIGUSR2 lifts it as RESUME would.
  CHECK(admin.exec("SUSPEND").status() == PGRES_COMMAND_OK);
  admin.close();
  px.send_signal(SIGUSR2);
  PgConn after(px.conninfo("app", "secret", "app", "connect_timeout=5"));
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(after.query_value("SELECT 'after SIGUSR2'") == "after SIGUSR2");
}

TEST_CASE("SET changes a reloadable setting at once; RELOAD goes back to the file; SHOW MEM") {
  PgmuxProcess px(
      test_env(),
      {.name = "set", .pool_size = 1, .query_wait_timeout_ms = 10000, .mode = "transaction"});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(admin.ok());
  auto config_value = [&](const std::string& key) {
    for (const auto& row : console_rows(px, "SHOW CONFIG")) {
      if (row.at("key") == key) return row.at("value");
    }
    return std::string("(missing)");
  };
  // query_wait_timeout_ms set from the console applies to the next client that waits.
  a.run("BEGIN");
  a.run("SELECT 1");
  REQUIRE(PQsendQuery(b.get(), "SELECT 'b served'") == 1);  // waits for a's server
  CHECK(still_busy(b, milliseconds(300)));
  CHECK(admin.exec("SET query_wait_timeout_ms = 300").status() == PGRES_COMMAND_OK);
  CHECK(config_value("query_wait_timeout_ms") == "300");
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE(c.ok());
  const auto asked = Clock::now();
  const PgResult timed_out = c.exec("SELECT 1");
  CHECK(timed_out.sqlstate() == "53300");
  CHECK(seconds_since(asked) < 2.0);  // the new 300 ms, not the file's 10 s
  a.run("COMMIT");
  CHECK(b.collect(true, milliseconds(5000)).value(0, 0) == "b served");

  CHECK(admin.exec("SET default_pool_size TO 7").status() == PGRES_COMMAND_OK);
  CHECK(config_value("default_pool_size") == "7");
  CHECK(admin.exec("SET server_reset_query = 'RESET ALL'").status() == PGRES_COMMAND_OK);
  CHECK(config_value("server_reset_query") == "RESET ALL");
  CHECK(admin.exec("SET listen_port = 1").sqlstate() == "55P02");
  CHECK(admin.exec("SET no_such_setting = 1").sqlstate() == "42704");
  const PgResult bad = admin.exec("SET default_pool_size = 'many'");
  CHECK(bad.sqlstate() == "22023");
  CHECK(admin.exec("SET pool_mode = bogus").sqlstate() == "22023");
  CHECK(admin.exec("SET default_pool_size").sqlstate() == "42601");
  CHECK(config_value("default_pool_size") == "7");  // the refused SETs changed nothing

  // RELOAD re-reads the file: values set with SET are gone, as in PgBouncer.
  CHECK(admin.exec("RELOAD").status() == PGRES_COMMAND_OK);
  CHECK(config_value("query_wait_timeout_ms") == "10000");
  CHECK(config_value("server_reset_query") == "DISCARD ALL");

  // SHOW MEM counts the sessions it holds and reports the process's resident memory.
  std::map<std::string, std::map<std::string, std::string>> mem;
  for (const auto& row : console_rows(px, "SHOW MEM")) mem[row.at("name")] = row;
  REQUIRE(mem.contains("client_sessions"));
  // a and b (c was closed by its 53300; the console is not counted).
  CHECK(mem["client_sessions"].at("used") == "2");
  REQUIRE(mem.contains("process_rss"));
  CHECK(std::stoll(mem["process_rss"].at("memtotal")) > 1'000'000);
}

TEST_CASE("SHUTDOWN WAIT_FOR_SERVERS closes idle clients, lets a transaction finish, exits") {
  PgmuxProcess px(test_env(),
                  {.name = "waitservers", .shutdown_timeout_ms = 20000, .mode = "transaction"});
  INFO(px.log_tail());
  PgConn idle(px.conninfo("app", "secret"));
  PgConn busy(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  REQUIRE(admin.ok());
  idle.run("SELECT 1");
  busy.run("BEGIN");
  busy.run("CREATE TEMP TABLE IF NOT EXISTS t_shutdown (x int) ON COMMIT DROP");
  CHECK(admin.exec("SHUTDOWN WAIT_FOR_SERVERS").status() == PGRES_COMMAND_OK);
  std::this_thread::sleep_for(milliseconds(300));
  // The idle client was told and closed; the one in a transaction goes on to its end.
  const PgResult told = idle.exec("SELECT 1");
  CHECK_FALSE(told.ok());
  CHECK_MESSAGE(told.describe().find("shutting down") != std::string::npos, told.describe());
  CHECK(busy.query_value("SELECT 'still here'") == "still here");
  PgConn late(px.conninfo("app", "secret"));
  CHECK_FALSE(late.ok());
  CHECK(px.running());
  busy.run("COMMIT");
  const auto status = px.wait_exit(milliseconds(5000));
  REQUIRE_MESSAGE(status.has_value(), "pgmux still running 5 s after the last transaction");
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("SHUTDOWN WAIT_FOR_CLIENTS waits for clients to leave; SHUTDOWN exits at once") {
  {
    PgmuxProcess px(test_env(), {.name = "waitclients", .mode = "transaction"});
    INFO(px.log_tail());
    PgConn c(px.conninfo("app", "secret"));
    PgConn admin = admin_console(px);
    REQUIRE(c.ok());
    REQUIRE(admin.ok());
    CHECK(admin.exec("SHUTDOWN WAIT_FOR_CLIENTS").status() == PGRES_COMMAND_OK);
    CHECK(admin.exec("SHUTDOWN WAIT_FOR_EVERYONE").sqlstate() == "42601");
    std::this_thread::sleep_for(milliseconds(700));
    CHECK(px.running());
    CHECK(c.query_value("SELECT 'served while draining'") == "served while draining");
    PgConn late(px.conninfo("app", "secret"));
    CHECK_FALSE(late.ok());
    c.close();
    const auto status = px.wait_exit(milliseconds(3000));
    REQUIRE_MESSAGE(status.has_value(), "pgmux still running 3 s after its last client left");
    CHECK(WEXITSTATUS(*status) == 0);
  }
  PgmuxProcess px(test_env(), {.name = "shutdownnow", .mode = "transaction"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  REQUIRE(c.ok());
  REQUIRE(admin.ok());
  const auto start = Clock::now();
  CHECK(admin.exec("SHUTDOWN").status() == PGRES_COMMAND_OK);
  const auto status = px.wait_exit(milliseconds(2000));
  REQUIRE_MESSAGE(status.has_value(), "pgmux still running 2 s after SHUTDOWN");
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(seconds_since(start) < 2.0);
  CHECK_FALSE(c.exec("SELECT 1").ok());
}

TEST_CASE("RELOAD with a moved primary sends new transactions to it; old connections drain") {
  // A failover as operators do it: point [databases.app] primary at the promoted server and
  // RELOAD. Here the "new primary" is the standby (it answers pg_is_in_recovery() = true, so
  // where each query ran is plain to see).
  PgmuxProcess px(test_env(), {.name = "moved", .pool_size = 2, .mode = "transaction"});
  INFO(px.log_tail());
  const auto& cluster = test_env().cluster();
  const std::string old_port = std::to_string(cluster.primary_port());
  const std::string new_port = std::to_string(cluster.replica_port());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn admin = admin_console(px);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(admin.ok());
  CHECK(a.query_value("SELECT inet_server_port()::text") == old_port);
  b.run("BEGIN");
  CHECK(b.query_value("SELECT inet_server_port()::text") == old_port);

  std::string text = px.config_text();
  const std::string from = "primary = { host = \"127.0.0.1\", port = " + old_port + " }";
  REQUIRE(text.find(from) != std::string::npos);
  text.replace(text.find(from), from.size(),
               "primary = { host = \"127.0.0.1\", port = " + new_port + " }");
  px.rewrite_config(text);
  CHECK(admin.exec("RELOAD").status() == PGRES_COMMAND_OK);
  CHECK(px.wait_for_log("server moved from 127.0.0.1:" + old_port, milliseconds(2000)));

  // a's next transaction runs on the new server; b finishes its transaction where it began.
  CHECK(a.query_value("SELECT inet_server_port()::text") == new_port);
  CHECK(b.query_value("SELECT inet_server_port()::text") == old_port);
  b.run("COMMIT");
  CHECK(b.query_value("SELECT inet_server_port()::text") == new_port);
  // No connection to the old primary is left.
  CHECK(wait_until(
      [&] {
        for (const auto& row : console_rows(px, "SHOW SERVERS")) {
          if (row.at("port") == old_port) return false;
        }
        return true;
      },
      milliseconds(3000)));
  for (const auto& row : console_rows(px, "SHOW DATABASES")) {
    if (row.at("name") == "app") CHECK(row.at("port") == new_port);
  }
}
