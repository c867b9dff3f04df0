// TCP keepalive on pgmux's client and server sockets, as the kernel reports them (ss): a peer
// that vanishes without a FIN (a cut link, a dead host) is noticed even while nobody writes.
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include "admin_stats.hpp"
#include "command.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

// ss's established TCP sockets matching `filter`, with their timers and owning processes.
std::string sockets(const std::string& filter) {
  const CommandResult r = run_command({.argv = {"ss", "-tnopH", "state", "established", filter}});
  REQUIRE_MESSAGE(r.exit_code == 0, r.describe());
  return r.out;
}

// The lines of `ss` output that belong to process `pid`.
std::string lines_of(const std::string& table, pid_t pid) {
  std::istringstream in(table);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.find("pid=" + std::to_string(pid) + ",") != std::string::npos) out += line + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("client and server sockets carry keepalive timers with the configured idle time") {
  PgmuxProcess px(test_env(), {.name = "keepalive",
                               .mode = "session",
                               .pgmux_toml = "tcp_keepalive_idle_s = 40\n"
                                             "tcp_keepalive_interval_s = 7\n"
                                             "tcp_keepalive_count = 2"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT 1") == "1");  // session mode: the client holds its server

  // Right after an answer the retransmission timer runs until the peer's (delayed) ACK; an
  // idle socket shows its keepalive timer.
  std::string client_side, server_side;
  const std::string primary_port = std::to_string(test_env().cluster().primary_port());
  const bool idle = wait_until(
      [&] {
        client_side = lines_of(sockets("( sport = :" + std::to_string(px.port()) + " )"), px.pid());
        server_side = lines_of(sockets("( dport = :" + primary_port + " )"), px.pid());
        return client_side.find("timer:(on") == std::string::npos &&
               server_side.find("timer:(on") == std::string::npos;
      },
      milliseconds(3000));
  CHECK(idle);
  INFO("client side:\n", client_side, "server side:\n", server_side);
  REQUIRE_FALSE(client_side.empty());
  REQUIRE_FALSE(server_side.empty());
  // "timer:(keepalive,39sec,0)": armed, counting down from tcp_keepalive_idle_s.
  for (const std::string* side : {&client_side, &server_side}) {
    std::istringstream in(*side);
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find("timer:(keepalive,");
      REQUIRE_MESSAGE(at != std::string::npos, line);
      const int left = std::stoi(line.substr(at + 17));
      CHECK(left > 30);
      CHECK(left <= 40);
    }
  }
  std::string shown;
  for (auto& row : console_rows(px, "SHOW CONFIG")) {
    if (row["key"] == "tcp_keepalive_idle_s") shown = row["value"];
  }
  CHECK(shown == "40");
}
