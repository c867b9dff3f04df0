// pgbench through a pgmux instance: initialise, run, and check every transaction succeeded.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "command.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

namespace pgmux::it {

inline const std::vector<std::string> kAppEnv = {"PGPASSWORD=secret", "PGSSLMODE=disable"};

inline std::vector<std::string> pgbench_args(const PgmuxProcess& px,
                                             std::vector<std::string> extra) {
  std::vector<std::string> args = {test_env().tool("pgbench"), "-h", "127.0.0.1", "-p",
                                   std::to_string(px.port()),  "-U", "app"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("app");
  return args;
}

inline std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(pattern)) && m.size() > 1) return m[1].str();
  return "";
}

struct PgbenchRun {
  std::string label;
  std::vector<std::string> args;
  int clients, transactions;
};

// pgbench -i -s 1 through `px`, then each run; every run must finish with exit code 0, no
// failed transactions and clients × transactions processed. Records tps in a MESSAGE.
inline void pgbench_init_and_run(const PgmuxProcess& px, const std::vector<PgbenchRun>& runs) {
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

}  // namespace pgmux::it
