// Dormant clients (client_dormant_after_ms): idle clients give up all but their socket and
// session state, then wake at their next byte with everything they had: settings, named
// statements, cancel key. Kills, departures and shutdown reach dormant clients too.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

std::map<std::string, std::map<std::string, std::string>> show_mem(const PgmuxProcess& px) {
  std::map<std::string, std::map<std::string, std::string>> mem;
  for (const auto& row : console_rows(px, "SHOW MEM")) mem[row.at("name")] = row;
  return mem;
}

long long mem_used(const PgmuxProcess& px, const std::string& row) {
  return std::stoll(show_mem(px).at(row).at("used"));
}

bool all_dormant(const PgmuxProcess& px, long long n) {
  return wait_until([&] { return mem_used(px, "dormant_clients") == n; }, milliseconds(5000));
}

std::unique_ptr<PgConn> client_with_state(const PgmuxProcess& px, int i) {
  const std::string name = "dozer-" + std::to_string(i);
  auto c =
      std::make_unique<PgConn>(px.conninfo("app", "secret", "app", "application_name=" + name));
  REQUIRE_MESSAGE(c->ok(), c->error());
  c->run("SET application_name = '" + name + "'");
  c->run("SET statement_timeout = '" + std::to_string(10 + i) + "s'");
  const PgResult prep = c->collect(PQsendPrepare(
      c->get(), "plus", ("SELECT $1::int + " + std::to_string(i)).c_str(), 1, nullptr));
  REQUIRE(prep.status() == PGRES_COMMAND_OK);
  return c;
}

void check_state(PgConn& c, int i) {
  CHECK(c.query_value("SHOW application_name") == "dozer-" + std::to_string(i));
  CHECK(c.query_value("SHOW statement_timeout") == std::to_string(10 + i) + "s");
  const char* value = "100";
  const PgResult r =
      c.collect(PQsendQueryPrepared(c.get(), "plus", 1, &value, nullptr, nullptr, 0));
  REQUIRE(r.status() == PGRES_TUPLES_OK);
  CHECK(r.value(0, 0) == std::to_string(100 + i));
}

}  // namespace

TEST_CASE("dormant clients wake with their settings, statements and cancel key") {
  PgmuxProcess px(test_env(), {.name = "dormant",
                               .pool_size = 2,
                               .mode = "transaction",
                               .pgmux_toml = "client_dormant_after_ms = 300"});
  INFO(px.log_tail());
  constexpr int kClients = 20;
  std::vector<std::unique_ptr<PgConn>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(client_with_state(px, i));
  REQUIRE(all_dormant(px, kClients));
  CHECK(mem_used(px, "client_sessions") == 0);
  CHECK(static_cast<int>(console_rows(px, "SHOW CLIENTS").size()) == kClients);

  // Every client finds its own state, twice over a doze.
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    for (int i = 0; i < kClients; ++i) check_state(*clients[static_cast<std::size_t>(i)], i);
    REQUIRE(all_dormant(px, kClients));
  }

  // A cancel key issued before the doze still cancels a query run after it.
  const PgCancel cancel(*clients[3]);
  REQUIRE(cancel.valid());
  std::string cancel_error = "not sent";
  {
    std::jthread canceller([&] {
      std::this_thread::sleep_for(milliseconds(500));
      cancel_error = cancel.cancel();
    });
    const PgResult r = clients[3]->exec("SELECT pg_sleep(20)");
    CHECK(r.sqlstate() == "57014");
  }
  CHECK_MESSAGE(cancel_error.empty(), cancel_error);
  check_state(*clients[3], 3);

  // KILL_CLIENT reaches a dormant client: its next request learns why.
  REQUIRE(all_dormant(px, kClients));
  std::string victim_id;
  for (const auto& row : console_rows(px, "SHOW CLIENTS")) {
    if (row.at("application_name") == "dozer-5") victim_id = row.at("id");
  }
  REQUIRE_FALSE(victim_id.empty());
  PgConn admin = admin_console(px);
  REQUIRE(admin.ok());
  CHECK(admin.exec("KILL_CLIENT " + victim_id).ok());
  const PgResult killed = clients[5]->exec("SELECT 1", milliseconds(5000));
  CHECK(killed.status() == PGRES_FATAL_ERROR);
  CHECK(killed.error().find("terminating connection due to administrator command") !=
        std::string::npos);

  // Clients that leave while dormant are gone from SHOW CLIENTS and from the pool's count.
  for (int i = 10; i < 15; ++i) clients[static_cast<std::size_t>(i)]->close();
  CHECK(wait_until([&] { return console_rows(px, "SHOW CLIENTS").size() == kClients - 6; },
                   milliseconds(5000)));
  CHECK(pool_stat(px, "cl_active") + pool_stat(px, "cl_waiting") == kClients - 6);
  CHECK(all_dormant(px, kClients - 6));

  // A graceful stop tells dormant clients why and exits cleanly.
  const auto status = px.stop();
  REQUIRE(status.has_value());
  const bool clean_exit = WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  CHECK_MESSAGE(clean_exit, describe_wait_status(*status));
  CHECK(px.log().find("pgmux stopped") != std::string::npos);
  const PgResult after = clients[0]->exec("SELECT 1", milliseconds(5000));
  CHECK(after.status() == PGRES_FATAL_ERROR);
}

TEST_CASE("a thousand dormant clients cost less than a kilobyte each") {
  PgmuxProcess px(test_env(), {.name = "dormant-rss",
                               .pool_size = 4,
                               .max_client_conn = 2000,
                               .mode = "transaction",
                               .pgmux_toml = "client_dormant_after_ms = 200"});
  INFO(px.log_tail());
  {
    PgConn warm(px.conninfo("app", "secret"));
    REQUIRE(warm.query_value("SELECT 1") == "1");
  }
  std::this_thread::sleep_for(milliseconds(500));
  const long before_kb = px.rss_kb();
  constexpr int kClients = 1000;
  std::vector<std::unique_ptr<PgConn>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<PgConn>(px.conninfo("app", "secret")));
    REQUIRE_MESSAGE(clients.back()->ok(), clients.back()->error());
    CHECK(clients.back()->query_value("SELECT 'served'") == "served");
  }
  REQUIRE(all_dormant(px, kClients));
  // Freed pages go back at the next check of the memory release loop (every 2 s).
  std::this_thread::sleep_for(milliseconds(2500));
  const long after_kb = px.rss_kb();
  const long per_client = (after_kb - before_kb) * 1024 / kClients;
  MESSAGE(kClients, " dormant clients: RSS +", after_kb - before_kb, " kB (", per_client,
          " B each)");
  // Under a sanitizer (PGMUX_TEST_BINARY) RSS measures its shadow memory instead.
  if (std::getenv("PGMUX_TEST_BINARY") == nullptr) CHECK(per_client < 1024);
  // They all still answer.
  for (auto& c : clients) CHECK(c->query_value("SELECT 'awake'") == "awake");
}
