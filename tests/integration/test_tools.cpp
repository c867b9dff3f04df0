// Real client programs through pgmux: psql and pgbench.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "command.hpp"
#include "pgbench_runner.hpp"
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
