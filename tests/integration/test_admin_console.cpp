// The admin console (database "pgmux") through psql.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <csignal>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "admin_stats.hpp"
#include "command.hpp"
#include "helpers.hpp"
#include "pgbench_runner.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

CommandResult psql_console(const PgmuxProcess& px, const std::string& user,
                           const std::string& password, const std::string& command) {
  return run_command({.argv = {test_env().tool("psql"), "-X", "-A", "-F", ",", "-P", "footer=off",
                               "-h", "127.0.0.1", "-p", std::to_string(px.port()), "-U", user, "-d",
                               "pgmux", "-c", command},
                      .env = {"PGPASSWORD=" + password, "PGSSLMODE=disable"},
                      .timeout = std::chrono::seconds(30)});
}

// Parses psql's unaligned output (header line + rows) into one map per row.
std::vector<std::map<std::string, std::string>> parse_table(const std::string& out) {
  std::vector<std::map<std::string, std::string>> rows;
  std::istringstream in(out);
  std::string line;
  std::vector<std::string> header;
  auto split = [](const std::string& l) {
    std::vector<std::string> cells;
    std::stringstream ss(l);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (!l.empty() && l.back() == ',') cells.emplace_back();
    return cells;
  };
  if (!std::getline(in, line)) return rows;
  header = split(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto cells = split(line);
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

std::map<std::string, std::string> app_pool(
    const std::vector<std::map<std::string, std::string>>& rows) {
  for (const auto& r : rows) {
    if (r.count("database") && r.at("database") == "app" && r.at("user") == "app") return r;
  }
  return {};
}

}  // namespace

TEST_CASE("SHOW POOLS over psql reports the clients and servers the test holds") {
  PgmuxProcess px(test_env(), {.name = "admin", .pool_size = 4});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn idle(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  REQUIRE_MESSAGE(idle.ok(), idle.error());
  // A session takes its server at its first query; `idle` never sends one.
  a.run("SELECT 1");
  b.run("SELECT 1");

  const CommandResult r = psql_console(px, "admin", "adminpass", "SHOW POOLS");
  INFO("psql SHOW POOLS: ", r.describe());
  REQUIRE(r.exit_code == 0);
  const auto pool = app_pool(parse_table(r.out));
  REQUIRE_FALSE(pool.empty());
  CHECK(pool.at("cl_active") == "3");
  CHECK(pool.at("cl_waiting") == "0");
  CHECK(pool.at("sv_active") == "2");
  CHECK(pool.at("sv_idle") == "0");
  CHECK(pool.at("pool_mode") == "session");
  CHECK(pool.at("pool_size") == "4");

  // One client leaves: its server goes idle once pgmux has reset it.
  b.close();
  const bool settled = wait_until(
      [&] {
        auto row = pool_row(px, "app", "app");
        return row && row->at("sv_idle") == "1" && row->at("sv_active") == "1";
      },
      milliseconds(5000));
  CHECK(settled);
  const CommandResult r2 = psql_console(px, "admin", "adminpass", "show pools;");
  INFO("psql show pools: ", r2.describe());
  REQUIRE(r2.exit_code == 0);
  const auto pool2 = app_pool(parse_table(r2.out));
  REQUIRE_FALSE(pool2.empty());
  CHECK(pool2.at("cl_active") == "2");
  CHECK(pool2.at("sv_active") == "1");
  CHECK(pool2.at("sv_idle") == "1");

  const CommandResult version = psql_console(px, "admin", "adminpass", "SHOW VERSION");
  INFO("SHOW VERSION: ", version.describe());
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("pgmux") != std::string::npos);

  const CommandResult dbs = psql_console(px, "admin", "adminpass", "SHOW DATABASES");
  INFO("SHOW DATABASES: ", dbs.describe());
  CHECK(dbs.exit_code == 0);
  const auto db_rows = parse_table(dbs.out);
  REQUIRE(db_rows.size() == 1);
  CHECK(db_rows[0].at("name") == "app");
  CHECK(db_rows[0].at("port") == std::to_string(test_env().cluster().primary_port()));
  CHECK(db_rows[0].at("pool_size") == "4");
  CHECK(db_rows[0].at("replicas") == "1");
  CHECK(db_rows[0].at("current_connections") == "2");  // the pool's active + idle above
  CHECK(db_rows[0].at("paused") == "0");
  CHECK(db_rows[0].at("disabled") == "0");
  CHECK(db_rows[0].at("target") == "primary");

  const CommandResult unknown = psql_console(px, "admin", "adminpass", "DROP TABLE x");
  INFO("unknown command: ", unknown.describe());
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("unknown or unsupported admin console command") != std::string::npos);
}

TEST_CASE("a non-admin user is refused by the admin console") {
  PgmuxProcess px(test_env(), {.name = "adminrefuse"});
  INFO(px.log_tail());
  const CommandResult r = psql_console(px, "app", "secret", "SHOW POOLS");
  INFO("psql as app: ", r.describe());
  CHECK(r.exit_code == 2);  // psql: connection failed
  CHECK(r.err.find("not allowed to use the admin console") != std::string::npos);
  CHECK(r.out.find("cl_active") == std::string::npos);
  // And a wrong admin password is refused too.
  const CommandResult wrong = psql_console(px, "admin", "not-the-password", "SHOW POOLS");
  CHECK(wrong.exit_code == 2);
  CHECK(wrong.err.find("password authentication failed") != std::string::npos);
}

namespace {

// SHOW STATS row of `database` as column → integer.
std::map<std::string, long long> stats_of(const PgmuxProcess& px, const std::string& command,
                                          const std::string& database = "app") {
  std::map<std::string, long long> out;
  for (const auto& row : console_rows(px, command)) {
    if (row.at("database") != database) continue;
    for (const auto& [k, v] : row) {
      if (k != "database") out[k] = std::stoll(v);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("SHOW STATS counts the transactions and queries clients ran, in both pool modes") {
  for (const std::string mode : {"transaction", "session"}) {
    CAPTURE(mode);
    PgmuxProcess px(test_env(),
                    {.name = "stats-" + mode, .mode = mode, .pgmux_toml = "stats_period_ms = 500"});
    INFO(px.log_tail());
    const auto before = stats_of(px, "SHOW STATS");
    REQUIRE(before.contains("total_xact_count"));
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    for (int i = 0; i < 40; ++i) c.run("SELECT 1");
    c.run("BEGIN");
    c.run("SELECT 2");
    c.run("COMMIT");
    const auto after = stats_of(px, "SHOW STATS");
    CHECK(after.at("total_xact_count") - before.at("total_xact_count") == 41);
    CHECK(after.at("total_query_count") - before.at("total_query_count") == 43);
    CHECK(after.at("total_received") - before.at("total_received") > 43 * 10);
    CHECK(after.at("total_sent") - before.at("total_sent") > 43 * 10);
    CHECK(after.at("total_xact_time") > before.at("total_xact_time"));
    CHECK(after.at("total_query_time") > before.at("total_query_time"));
    const auto totals = stats_of(px, "SHOW STATS_TOTALS");
    CHECK(totals.at("xact_count") == after.at("total_xact_count"));
    CHECK(totals.at("query_count") == after.at("total_query_count"));
    // Averages cover the last completed period (500 ms here): the load shows up in one.
    CHECK(wait_until(
        [&] {
          for (int i = 0; i < 20; ++i) c.run("SELECT 1");
          return stats_of(px, "SHOW STATS_AVERAGES").at("xact_count") > 0;
        },
        milliseconds(3000)));
    const auto avg = stats_of(px, "SHOW STATS_AVERAGES");
    CHECK(avg.at("query_time") > 0);
    CHECK(avg.at("xact_time") > 0);
  }
}

TEST_CASE("PAUSE holds a pgbench run without failing it; RESUME lets it finish; signals too") {
  PgmuxProcess px(
      test_env(),
      {.name = "pause", .pool_size = 4, .query_wait_timeout_ms = 20000, .mode = "transaction"});
  INFO(px.log_tail());
  const CommandResult init = run_command({.argv = pgbench_args(px, {"-i", "-s", "1"}),
                                          .env = kAppEnv,
                                          .timeout = std::chrono::seconds(120)});
  REQUIRE_MESSAGE(init.exit_code == 0, init.describe());
  auto bench = std::async(std::launch::async, [&] {
    return run_command({.argv = pgbench_args(px, {"-S", "-c", "8", "-j", "2", "-T", "5"}),
                        .env = kAppEnv,
                        .timeout = std::chrono::seconds(60)});
  });
  std::this_thread::sleep_for(milliseconds(1000));
  PgConn admin = admin_console(px);
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  auto start = Clock::now();
  const PgResult paused = admin.exec("PAUSE");
  CHECK_MESSAGE(paused.status() == PGRES_COMMAND_OK, paused.describe());
  CHECK(seconds_since(start) < 3.0);
  // While paused nothing runs: the transaction count stands still, clients queue.
  const auto held = stats_of(px, "SHOW STATS").at("total_xact_count");
  std::this_thread::sleep_for(milliseconds(700));
  CHECK(stats_of(px, "SHOW STATS").at("total_xact_count") == held);
  CHECK(pool_stat(px, "cl_waiting") > 0);
  CHECK(pool_stat(px, "sv_active") == 0);
  const PgResult resumed = admin.exec("RESUME");
  CHECK_MESSAGE(resumed.status() == PGRES_COMMAND_OK, resumed.describe());
  const CommandResult r = bench.get();
  INFO(r.describe());
  CHECK(r.exit_code == 0);
  CHECK(match(r.out, R"(number of failed transactions: (\d+))") == "0");
  CHECK(stats_of(px, "SHOW STATS").at("total_xact_count") > held);
  const PgResult again = admin.exec("RESUME");
  CHECK_FALSE(again.ok());
  CHECK_MESSAGE(again.sqlstate() == "55000", again.describe());
  CHECK(admin.exec("PAUSE nosuchdb").sqlstate() == "3D000");

  // SIGUSR1 pauses, SIGUSR2 resumes.
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  px.send_signal(SIGUSR1);
  REQUIRE(px.wait_for_log("SIGUSR1: pausing", milliseconds(2000)));
  REQUIRE(PQsendQuery(c.get(), "SELECT 'after resume'") == 1);
  std::this_thread::sleep_for(milliseconds(500));
  PQconsumeInput(c.get());
  CHECK(PQisBusy(c.get()) == 1);  // held
  px.send_signal(SIGUSR2);
  const PgResult late = c.collect(true, milliseconds(5000));
  CHECK(late.value(0, 0) == "after resume");
}

TEST_CASE("RELOAD applies a new pool size without dropping clients; a broken file is refused") {
  PgmuxProcess px(
      test_env(),
      {.name = "reload", .pool_size = 2, .query_wait_timeout_ms = 1500, .mode = "transaction"});
  INFO(px.log_tail());
  const std::string original = px.config_text();
  REQUIRE(original.find("pool_size = 2\n") != std::string::npos);
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  PgConn third(px.conninfo("app", "secret"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(third.ok());
  a.run("BEGIN");
  a.run("SELECT 1");
  b.run("BEGIN");
  b.run("SELECT 1");
  CHECK(pool_stat(px, "pool_size") == 2);

  std::string grown = original;
  grown.replace(grown.find("pool_size = 2\n"), 14, "pool_size = 3\n");
  px.rewrite_config(grown);
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  const PgResult ok = admin.exec("RELOAD");
  CHECK_MESSAGE(ok.status() == PGRES_COMMAND_OK, ok.describe());
  CHECK(pool_stat(px, "pool_size") == 3);
  // The third client gets the new connection while the first two keep their transactions.
  CHECK(third.query_value("SELECT 'grown'") == "grown");
  CHECK(a.tx_status() == PQTRANS_INTRANS);
  CHECK(a.query_value("SELECT 'a still here'") == "a still here");

  px.rewrite_config("[pool\nsize = oops\n");
  const PgResult bad = admin.exec("RELOAD");
  CHECK_FALSE(bad.ok());
  CHECK_MESSAGE(bad.sqlstate() == "F0000", bad.describe());
  CHECK(bad.error().find("configuration not reloaded") != std::string::npos);
  CHECK(bad.error().find(".toml") != std::string::npos);  // names the file
  CHECK(px.wait_for_log("RELOAD refused, the running configuration stays", milliseconds(1000)));
  CHECK(pool_stat(px, "pool_size") == 3);
  PgConn fresh(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(fresh.ok(), fresh.error());
  CHECK(fresh.query_value("SELECT 'still serving'") == "still serving");

  // SIGHUP does the same.
  std::string four = original;
  four.replace(four.find("pool_size = 2\n"), 14, "pool_size = 4\n");
  px.rewrite_config(four);
  px.send_signal(SIGHUP);
  CHECK(wait_until([&] { return pool_stat(px, "pool_size") == 4; }, milliseconds(3000)));
  a.run("COMMIT");
  b.run("COMMIT");
}

TEST_CASE("SHOW CONFIG/USERS/STATE/LISTS; DISABLE/ENABLE; BAN/UNBAN; stats users; SHUTDOWN") {
  const auto replica = std::to_string(test_env().cluster().replica_port());
  PgmuxProcess px(test_env(),
                  {.name = "control",
                   .mode = "transaction",
                   .pgmux_toml = "stats_users = [\"pwuser\"]",
                   .routing_toml = "read_write_split = \"on\"\nread_your_writes = \"off\""});
  INFO(px.log_tail());
  auto value_of = [&](const std::string& command, const std::string& key_col,
                      const std::string& key, const std::string& col) {
    for (const auto& row : console_rows(px, command)) {
      if (row.at(key_col) == key) return row.at(col);
    }
    return std::string("(missing)");
  };
  CHECK(value_of("SHOW CONFIG", "key", "default_pool_size", "value") == "4");
  CHECK(value_of("SHOW CONFIG", "key", "default_pool_size", "changeable") == "yes");
  CHECK(value_of("SHOW CONFIG", "key", "listen_port", "value") == std::to_string(px.port()));
  CHECK(value_of("SHOW CONFIG", "key", "listen_port", "changeable") == "no");
  CHECK(value_of("SHOW USERS", "name", "md5user", "auth") == "md5");
  CHECK(value_of("SHOW STATE", "key", "active", "value") == "yes");
  CHECK(value_of("SHOW LISTS", "list", "databases", "items") == "1");

  // DISABLE refuses new logins only.
  PgConn before(px.conninfo("app", "secret"));
  REQUIRE(before.ok());
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  CHECK(admin.exec("DISABLE app").status() == PGRES_COMMAND_OK);
  CHECK(value_of("SHOW DATABASES", "name", "app", "disabled") == "1");
  PgConn refused(px.conninfo("app", "secret"));
  CHECK_FALSE(refused.ok());
  CHECK(refused.error().find("is disabled") != std::string::npos);
  CHECK(before.query_value("SELECT 'still in'") == "still in");
  CHECK(admin.exec("ENABLE app").status() == PGRES_COMMAND_OK);
  PgConn after(px.conninfo("app", "secret"));
  CHECK(after.ok());
  CHECK(admin.exec("DISABLE nosuchdb").sqlstate() == "3D000");

  // BAN keeps reads off a replica until UNBAN.
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  CHECK(before.query_value("SELECT pg_is_in_recovery()::text") == "true");
  CHECK(admin.exec("BAN 127.0.0.1:" + replica).status() == PGRES_COMMAND_OK);
  CHECK(before.query_value("SELECT pg_is_in_recovery()::text") == "false");
  CHECK(value_of("SHOW REPLICAS", "port", replica, "eligible") == "f");
  CHECK(admin.exec("UNBAN app 127.0.0.1:" + replica).status() == PGRES_COMMAND_OK);
  CHECK(before.query_value("SELECT pg_is_in_recovery()::text") == "true");
  CHECK(admin.exec("BAN 10.0.0.1:5432").sqlstate() == "42704");

  // A stats user may look but not steer.
  PgConn stats(px.conninfo("pwuser", "pwpass", "pgmux"));
  REQUIRE_MESSAGE(stats.ok(), stats.error());
  CHECK(stats.exec("SHOW POOLS").status() == PGRES_TUPLES_OK);
  const PgResult denied = stats.exec("PAUSE");
  CHECK_FALSE(denied.ok());
  CHECK(denied.sqlstate() == "42501");
  CHECK(stats.exec("RELOAD").sqlstate() == "42501");

  // SHUTDOWN: stop accepting, let clients go, exit.
  before.close();
  after.close();
  stats.close();
  CHECK(admin.exec("SHUTDOWN").status() == PGRES_COMMAND_OK);
  admin.close();
  const auto status = px.wait_exit(milliseconds(8000));
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("SHOW CLIENTS and SHOW SERVERS list clients and server connections with state") {
  PgmuxProcess px(
      test_env(),
      {.name = "clients", .pool_size = 1, .query_wait_timeout_ms = 10000, .mode = "transaction"});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret", "app", "application_name=holder"));
  PgConn b(px.conninfo("app", "secret", "app", "application_name=queued"));
  PgConn c(px.conninfo("md5user", "md5pass", "app", "application_name=resting"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  a.run("BEGIN");
  const std::string pid = a.query_value("SELECT pg_backend_pid()");
  REQUIRE(PQsendQuery(b.get(), "SELECT 'served'") == 1);  // waits for a's server
  std::map<std::string, std::map<std::string, std::string>> by_app;
  CHECK(wait_until(
      [&] {
        by_app.clear();
        for (const auto& row : console_rows(px, "SHOW CLIENTS"))
          by_app[row.at("application_name")] = row;
        return by_app.contains("queued") && by_app["queued"].at("state") == "waiting";
      },
      milliseconds(3000)));
  REQUIRE(by_app.contains("holder"));
  REQUIRE(by_app.contains("resting"));
  CHECK(by_app["holder"].at("state") == "active");
  CHECK(by_app["holder"].at("user") == "app");
  CHECK(by_app["holder"].at("database") == "app");
  CHECK(by_app["holder"].at("addr") == "127.0.0.1");
  CHECK(by_app["resting"].at("state") == "idle");
  CHECK(by_app["resting"].at("user") == "md5user");
  // SHOW SERVERS: the one server connection, in use by a, with its backend pid.
  auto server_state = [&] {
    for (const auto& row : console_rows(px, "SHOW SERVERS")) {
      if (row.at("remote_pid") == pid) return row.at("state") + " " + row.at("database");
    }
    return std::string("(missing)");
  };
  CHECK(server_state() == "active app");
  int app_servers = 0;  // md5user's pool has its own (opened for its login's parameters)
  for (const auto& row : console_rows(px, "SHOW SERVERS")) app_servers += row.at("user") == "app";
  CHECK(app_servers == 1);
  a.run("COMMIT");
  const PgResult served = b.collect(true, milliseconds(5000));
  CHECK(served.value(0, 0) == "served");
  CHECK(wait_until([&] { return server_state() == "idle app"; }, milliseconds(3000)));
  // KILL_CLIENT closes one client's connection; the others go on.
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  CHECK(admin.exec("KILL_CLIENT " + by_app["resting"].at("id")).status() == PGRES_COMMAND_OK);
  CHECK(wait_until(
      [&] {
        for (const auto& row : console_rows(px, "SHOW CLIENTS")) {
          if (row.at("application_name") == "resting") return false;
        }
        return true;
      },
      milliseconds(3000)));
  CHECK_FALSE(c.exec("SELECT 1").ok());
  CHECK(b.query_value("SELECT 'b fine'") == "b fine");
  CHECK(admin.exec("KILL_CLIENT 999999").sqlstate() == "42704");
}
