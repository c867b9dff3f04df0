// Real client programs through pgmux: psql and pgbench.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "command.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

std::vector<std::string> psql_args(const PgmuxProcess& px, std::vector<std::string> extra) {
  std::vector<std::string> args = {
      test_env().tool("psql"),   "-X", "-q",  "-A", "-t",  "-h", "127.0.0.1",      "-p",
      std::to_string(px.port()), "-U", "app", "-d", "app", "-v", "ON_ERROR_STOP=1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

const std::vector<std::string> kAppEnv = {"PGPASSWORD=secret", "PGSSLMODE=disable"};

std::vector<std::string> pgbench_args(const PgmuxProcess& px, std::vector<std::string> extra) {
  std::vector<std::string> args = {test_env().tool("pgbench"), "-h", "127.0.0.1", "-p",
                                   std::to_string(px.port()),  "-U", "app"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("app");
  return args;
}

std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(pattern)) && m.size() > 1) return m[1].str();
  return "";
}

}  // namespace

TEST_CASE("psql runs -c and a script file through pgmux") {
  PgmuxProcess px(test_env(), {.name = "psql"});
  INFO(px.log_tail());

  const CommandResult one =
      run_command({.argv = psql_args(px, {"-c", "select 1"}), .env = kAppEnv});
  INFO("psql -c: ", one.describe());
  CHECK(one.exit_code == 0);
  CHECK(one.out == "1\n");

  const auto script = test_env().unique_stem("psql-script").string() + ".sql";
  std::ofstream(script) << "CREATE TEMP TABLE s(x int);\n"
                           "INSERT INTO s SELECT generate_series(1, 10);\n"
                           "SELECT sum(x) FROM s;\n"
                           "\\set v 'from a variable'\n"
                           "SELECT :'v' AS v, current_user;\n"
                           "BEGIN;\n"
                           "UPDATE s SET x = x * 2;\n"
                           "COMMIT;\n"
                           "SELECT max(x) FROM s;\n";
  const CommandResult file = run_command({.argv = psql_args(px, {"-f", script}), .env = kAppEnv});
  INFO("psql -f: ", file.describe());
  CHECK(file.exit_code == 0);
  CHECK(file.out == "55\nfrom a variable|app\n20\n");
  CHECK(file.err == "");

  // A failing -c command gives exit code 1 and the server's message.
  const CommandResult bad =
      run_command({.argv = psql_args(px, {"-c", "select 1/0"}), .env = kAppEnv});
  INFO("psql failing: ", bad.describe());
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("division by zero") != std::string::npos);
}

namespace {

struct PgbenchRun {
  std::string label;
  std::vector<std::string> args;
  int clients, transactions;
};

// pgbench -i -s 1 through `px`, then each run; every run must finish with exit code 0, no
// failed transactions and clients × transactions processed. Records tps in a MESSAGE.
void pgbench_init_and_run(const PgmuxProcess& px, const std::vector<PgbenchRun>& runs) {
  const auto timeout = std::chrono::seconds(120);
  const CommandResult init = run_command(
      {.argv = pgbench_args(px, {"-i", "-s", "1"}), .env = kAppEnv, .timeout = timeout});
  INFO("pgbench -i: ", init.describe());
  REQUIRE(init.exit_code == 0);
  {
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SELECT count(*) FROM pgbench_accounts") == "100000");
    CHECK(c.query_value("SELECT count(*) FROM pgbench_branches") == "1");
  }
  for (const PgbenchRun& run : runs) {
    CAPTURE(run.label);
    const CommandResult r =
        run_command({.argv = pgbench_args(px, run.args), .env = kAppEnv, .timeout = timeout});
    INFO("pgbench ", run.label, ": ", r.describe());
    CHECK(r.exit_code == 0);
    const int expected = run.clients * run.transactions;
    CHECK(match(r.out, R"(number of transactions actually processed: (\d+/\d+))") ==
          std::to_string(expected) + "/" + std::to_string(expected));
    CHECK(match(r.out, R"(number of failed transactions: (\d+))") == "0");
    const std::string tps = match(r.out, R"(tps = ([0-9.]+))");
    CHECK_FALSE(tps.empty());
    MESSAGE("pgbench ", run.label, ": tps = ", tps, " (exit code ", r.exit_code, ", ",
            match(r.out, R"(number of transactions actually processed: (\d+/\d+))"), " processed)");
    if (std::find(run.args.begin(), run.args.end(), "-S") == run.args.end()) {
      // Each TPC-B transaction committed one history row (pgbench truncates the table when
      // a run starts).
      PgConn c(px.conninfo("app", "secret"));
      REQUIRE_MESSAGE(c.ok(), c.error());
      CHECK(c.query_value("SELECT count(*) FROM pgbench_history") == std::to_string(expected));
    }
  }
}

}  // namespace

// More clients than pool slots: in session mode each pgbench client must reconnect per
// transaction (-C) to let the others in. pgbench connects synchronously inside its worker
// threads, so with -j 2 a thread blocked in a login holds its other clients' servers.
TEST_CASE("pgbench -C -c 8 -j 2 (TPC-B and select-only) through a 4-slot session pool") {
  PgmuxProcess px(test_env(), {.name = "pgbench", .pool_size = 4, .query_wait_timeout_ms = 5000});
  INFO(px.log_tail());
  pgbench_init_and_run(
      px, {{"TPC-B -C -c 8 -j 2 -t 50", {"-C", "-c", "8", "-j", "2", "-t", "50"}, 8, 50},
           {"select-only -C -S -c 8 -j 2 -t 100",
            {"-C", "-S", "-c", "8", "-j", "2", "-t", "100"},
            8,
            100}});
}

// The same load with one client per pgbench thread: a thread waiting in a login holds no
// other server connection, so only pgmux's own queueing is exercised.
TEST_CASE("pgbench -C -c 8 -j 8 (TPC-B and select-only) through a 4-slot session pool") {
  PgmuxProcess px(test_env(),
                  {.name = "pgbench-j8", .pool_size = 4, .query_wait_timeout_ms = 5000});
  INFO(px.log_tail());
  pgbench_init_and_run(
      px, {{"TPC-B -C -c 8 -j 8 -t 50", {"-C", "-c", "8", "-j", "8", "-t", "50"}, 8, 50},
           {"select-only -C -S -c 8 -j 8 -t 100",
            {"-C", "-S", "-c", "8", "-j", "8", "-t", "100"},
            8,
            100}});
}
