// Transaction mode with the pool full: a client's request waits in the pool's queue from a
// completion handler (session/queued_turn.cpp), is served in FIFO order by the server the
// holder hands back, in step with the waiting client's own settings, shows as waiting in
// SHOW CLIENTS meanwhile, and fails with 53300 after query_wait_timeout_ms. With two workers,
// a server given back goes to a waiter on its own worker's event loop.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "metrics_scrape.hpp"
#include "pgbench_runner.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

PgmuxOptions queue_options(std::string name, std::int64_t wait_ms) {
  return {.name = std::move(name),
          .pool_size = 1,
          .query_wait_timeout_ms = wait_ms,
          .mode = "transaction"};
}

int clients_in_state(const PgmuxProcess& px, const std::string& state) {
  int n = 0;
  for (auto& row : console_rows(px, "SHOW CLIENTS")) {
    if (row["state"] == state) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("a full pool's queue: served by the server handed back, in the client's own settings") {
  PgmuxProcess px(test_env(), queue_options("queued-turn", 15000));
  INFO(px.log_tail());
  PgConn holder(px.conninfo("app", "secret"));
  PgConn waiter(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(holder.ok(), holder.error());
  REQUIRE_MESSAGE(waiter.ok(), waiter.error());
  // The waiting client's own setting: the server it is handed must be brought in step first.
  waiter.run("SET statement_timeout = '123s'");
  // The holder keeps the only server in a transaction.
  holder.run("BEGIN");
  const std::string holder_pid = holder.query_value("SELECT pg_backend_pid()");
  REQUIRE(pool_stat(px, "sv_active") == 1);

  std::string got_pid, got_setting, error;
  std::jthread waiting([&] {
    try {
      const PgResult r =
          waiter.exec("SELECT pg_backend_pid(), current_setting('statement_timeout')");
      if (!r.ok()) {
        error = r.describe();
        return;
      }
      got_pid = r.value(0, 0);
      got_setting = r.value(0, 1);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  REQUIRE(wait_until([&] { return pool_stat(px, "cl_waiting") == 1; }, milliseconds(10000)));
  CHECK(clients_in_state(px, "waiting") == 1);
  std::this_thread::sleep_for(milliseconds(200));
  CHECK(got_pid.empty());  // still waiting while the holder's transaction is open
  holder.run("COMMIT");
  waiting.join();
  CHECK_MESSAGE(error.empty(), error);
  CHECK(got_pid == holder_pid);  // the one server, handed over
  CHECK(got_setting == "123s");
  CHECK(pool_stat(px, "cl_waiting") == 0);
  // Both go on normally, each in its own settings.
  CHECK(holder.query_value("SELECT current_setting('statement_timeout')") == "0");
  CHECK(waiter.query_value("SELECT current_setting('statement_timeout')") == "123s");
}

TEST_CASE("a full pool's queue: 53300 after query_wait_timeout_ms, the holder unaffected") {
  PgmuxProcess px(test_env(), queue_options("queued-timeout", 1000));
  INFO(px.log_tail());
  PgConn holder(px.conninfo("app", "secret"));
  PgConn late(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(holder.ok(), holder.error());
  REQUIRE_MESSAGE(late.ok(), late.error());
  holder.run("BEGIN");
  holder.run("SELECT 1");
  const auto start = std::chrono::steady_clock::now();
  const PgResult r = late.exec("SELECT 1");
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "53300", r.describe());
  CHECK_MESSAGE(r.error().find("query_wait_timeout_ms (1000 ms)") != std::string::npos,
                r.describe());
  CHECK(took >= 0.9);
  CHECK(took < 5.0);
  CHECK(pool_stat(px, "cl_waiting") == 0);
  CHECK(holder.query_value("SELECT 'still here'") == "still here");
  holder.run("COMMIT");
  PgConn next(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(next.ok(), next.error());
  CHECK(next.query_value("SELECT 2") == "2");
}

TEST_CASE("two workers: a server given back goes to a waiter on its own worker") {
  // Clients alternate between the two workers; 16 of them share 2 servers, so nearly every
  // transaction waits in the queue. Handing the server to the queue's head whatever its worker
  // moved it to the other event loop on about every other transaction (43 % measured); a waiter
  // of the server's own worker takes it unless the head waited clearly longer.
  const std::uint16_t mport = pick_free_port();
  PgmuxProcess px(test_env(),
                  {.name = "queued-affinity",
                   .pool_size = 2,
                   .query_wait_timeout_ms = 30000,
                   .mode = "transaction",
                   .pgmux_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(mport) + "\""});
  INFO(px.log_tail());
  const std::string script = test_env().unique_stem("select-one").string() + ".sql";
  std::ofstream(script) << "SELECT 1;\n";
  constexpr int kClients = 16, kTransactions = 150;
  const CommandResult r =
      run_command({.argv = pgbench_args(px, {"-n", "-f", script, "-c", std::to_string(kClients),
                                             "-j", "2", "-t", std::to_string(kTransactions)}),
                   .env = kAppEnv,
                   .timeout = std::chrono::seconds(120)});
  INFO("pgbench: ", r.describe());
  REQUIRE(r.exit_code == 0);
  CHECK(match(r.out, R"(number of failed transactions: (\d+))") == "0");

  const HttpReply reply = http_get(mport, "/metrics");
  REQUIRE(reply.status == 200);
  const Exposition e = parse_exposition(reply.body);
  const double transactions = e.samples.at("pgmux_transactions_total{database=\"app\"}");
  const double moves = e.samples.at(
      "pgmux_pool_server_moves_total{database=\"app\",user=\"app\",target=\"primary\"}");
  MESSAGE("servers moved between workers on ", moves, " of ", transactions, " transactions");
  CHECK(transactions >= kClients * kTransactions);
  CHECK(moves * 10 < transactions);
}

TEST_CASE("a client that leaves while queued: its request never runs") {
  empty_table("queued_gone", "id int", "md5user");
  PgmuxProcess px(test_env(), queue_options("queued-gone", 15000));
  INFO(px.log_tail());
  PgConn holder(px.conninfo("md5user", "md5pass"));
  REQUIRE_MESSAGE(holder.ok(), holder.error());
  holder.run("BEGIN");
  holder.run("SELECT 1");  // the pool's one server is held
  // A raw client logs in, sends an INSERT that must wait for the server, and closes its
  // socket when raw_login gives up after 1.5 s.
  const RawLogin gone = raw_login(px.port(), "md5user", "app", "md5pass", milliseconds(1500),
                                  "INSERT INTO queued_gone VALUES (1)");
  CHECK(gone.ready);
  CHECK_FALSE(gone.query_done);
  std::this_thread::sleep_for(milliseconds(300));
  holder.run("COMMIT");
  // The server is handed on; the INSERT of the client that left must not run.
  std::this_thread::sleep_for(milliseconds(1000));
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  CHECK(p.query_value("SELECT count(*) FROM queued_gone") == "0");
  CHECK(holder.query_value("SELECT 'still served'") == "still served");
}
