// A fleet: several pgmux processes on one port (so_reuseport) restarted in turn under load, and
// cancels that reach an instance other than the client's (peer_id, [peers]).
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <csignal>
#include <fstream>
#include <memory>
#include <thread>

#include "command.hpp"
#include "haproxy.hpp"
#include "helpers.hpp"
#include "pgbench_runner.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"

using namespace pgmux::it;
using namespace std::chrono;

namespace {

// net.ipv4.tcp_migrate_req = 1 for the test's lifetime: a stopping process's queued
// connections go to a sibling listener instead of being reset (docs/deployment.md).
class RequestMigration {
 public:
  RequestMigration() {
    std::ifstream in(kPath);
    in >> old_;
    std::ofstream(kPath) << 1;
    std::ifstream check(kPath);
    check >> now_;
  }
  ~RequestMigration() { std::ofstream(kPath) << old_; }
  [[nodiscard]] bool on() const { return now_ == 1; }

 private:
  static constexpr const char* kPath = "/proc/sys/net/ipv4/tcp_migrate_req";
  int old_ = 0, now_ = 0;
};

// One instance of a fleet: on a port shared with its siblings (so_reuseport), or on its own
// behind the balancer, knowing the others through `peers`.
enum class Port : std::uint8_t { shared, own };
PgmuxOptions fleet_member(const std::string& name, std::uint16_t port, int peer_id, Port kind,
                          const std::string& peers = "") {
  PgmuxOptions o;
  o.name = name;
  o.port = port;
  o.mode = "transaction";
  o.workers = 1;
  o.pgmux_toml = std::string(kind == Port::shared ? "so_reuseport = true\n" : "") +
                 "peer_id = " + std::to_string(peer_id);
  o.extra_toml = peers;
  return o;
}

// [peers] naming both instances: the same text in each one's config.
std::string peers_of(std::uint16_t port_1, std::uint16_t port_2) {
  return "[peers.1]\nhost = \"127.0.0.1\"\nport = " + std::to_string(port_1) +
         "\n[peers.2]\nhost = \"127.0.0.1\"\nport = " + std::to_string(port_2) + "\n";
}

// Two instances (peer 1 and 2) behind HAProxy's round robin, each knowing the other.
struct Fleet {
  explicit Fleet(const std::string& name, const std::string& routing_toml = "")
      : port_1(pick_free_port()), port_2(pick_free_port()) {
    for (int id : {1, 2}) {
      PgmuxOptions o = fleet_member(name + "-" + std::to_string(id), id == 1 ? port_1 : port_2, id,
                                    Port::own, peers_of(port_1, port_2));
      if (!routing_toml.empty()) o.routing_toml = routing_toml;
      o.query_wait_timeout_ms = 10000;
      members.push_back(std::make_unique<PgmuxProcess>(test_env(), o));
    }
    balancer = std::make_unique<Haproxy>(test_env(), std::vector<std::uint16_t>{port_1, port_2});
  }
  [[nodiscard]] int count_in_logs(const std::string& text) const {
    int n = 0;
    for (const auto& m : members) n += m->count_in_log(text);
    return n;
  }
  std::uint16_t port_1, port_2;
  std::vector<std::unique_ptr<PgmuxProcess>> members;
  std::unique_ptr<Haproxy> balancer;
};

}  // namespace

TEST_CASE("fleet: processes sharing a port restart in turn under a connection per transaction") {
  TestEnv& env = test_env();
  RequestMigration migration;
  REQUIRE_MESSAGE(migration.on(), "net.ipv4.tcp_migrate_req cannot be set (not root?)");
  const std::uint16_t port = pick_free_port();
  auto a = std::make_unique<PgmuxProcess>(env, fleet_member("fleet-a", port, 1, Port::shared));
  auto b = std::make_unique<PgmuxProcess>(env, fleet_member("fleet-b", port, 2, Port::shared));
  const auto script = env.unique_stem("fleet-select").string() + ".sql";
  std::ofstream(script) << "SELECT 1;\n";

  // Each process in turn: SIGTERM (it stops listening, its queued connections move to the
  // sibling, its clients finish), a clean exit, a new process on the same port.
  const auto args = pgbench_args(*a, {"-n", "-C", "-c", "4", "-j", "2", "-T", "8", "-f", script});
  // pgbench runs on a thread of its own: the restarts fork the new processes from this one,
  // whose exit PR_SET_PDEATHSIG would take them down with it.
  CommandResult r;
  std::thread load(
      [&] { r = run_command({.argv = args, .env = kAppEnv, .timeout = seconds(60)}); });
  std::vector<std::string> exits;
  try {
    for (auto* slot : {&a, &b}) {
      std::this_thread::sleep_for(milliseconds(2500));
      const std::string name = (*slot)->options().name;
      (*slot)->send_signal(SIGTERM);
      const auto status = (*slot)->wait_exit(milliseconds(10000));
      exits.push_back(name + ": " + (status ? describe_wait_status(*status) : "still running"));
      *slot = std::make_unique<PgmuxProcess>(
          env, fleet_member(name + "-new", port, slot == &a ? 1 : 2, Port::shared));
    }
  } catch (const std::exception& e) {
    exits.push_back(std::string("restart failed: ") + e.what());
  }
  load.join();
  INFO("pgbench: ", r.describe());
  for (const auto& e : exits) INFO(e);
  REQUIRE(exits.size() == 2);
  CHECK(exits[0] == "fleet-a: exited with status 0");
  CHECK(exits[1] == "fleet-b: exited with status 0");
  CHECK(r.exit_code == 0);
  CHECK(match(r.out, R"(number of failed transactions: (\d+))") == "0");
  const std::string processed = match(r.out, R"(number of transactions actually processed: (\d+))");
  REQUIRE_FALSE(processed.empty());
  CHECK(std::stoi(processed) > 100);
  MESSAGE("rolling restart of 2 processes under pgbench -C: ", processed,
          " transactions (each a new connection), ",
          match(r.out, R"(number of failed transactions: (\d+))"), " failed, exit code ",
          r.exit_code);
  // Both new processes serve the port.
  CHECK(a->log().find("pgmux listening") != std::string::npos);
  CHECK(b->log().find("pgmux listening") != std::string::npos);
}

TEST_CASE("fleet: a cancel that reaches another instance cancels the right query, and only it") {
  Fleet fleet("fleet-cancel");
  PgConn watcher = direct_primary();
  REQUIRE_MESSAGE(watcher.ok(), watcher.error());
  constexpr int kRounds = 10;
  int cancelled = 0, bystanders_done = 0;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    // A bystander runs a short query on the same fleet while the target's query is cancelled.
    PgConn bystander(fleet.balancer->conninfo());
    PgConn target(fleet.balancer->conninfo());
    REQUIRE_MESSAGE(bystander.ok(), bystander.error());
    REQUIRE_MESSAGE(target.ok(), target.error());
    REQUIRE(PQsendQuery(bystander.get(), "SELECT pg_sleep(0.4), 'kept'") == 1);
    REQUIRE(PQsendQuery(target.get(), "SELECT pg_sleep(30)") == 1);
    // The cancel must find the query running on its server (an idle client's is dropped).
    REQUIRE(wait_until(
        [&] {
          return watcher.query_value(
                     "SELECT count(*) FROM pg_stat_activity WHERE query = "
                     "'SELECT pg_sleep(30)' AND state = 'active'") == "1";
        },
        milliseconds(10000)));
    // libpq sends the cancel to the address it connected to: HAProxy, which passes the new
    // connection to the next instance in its rotation.
    const PgCancel cancel(target);
    REQUIRE(cancel.valid());
    CHECK(cancel.cancel() == "");
    const auto started = steady_clock::now();
    const PgResult cancelled_result = target.collect(true);
    const PgResult kept = bystander.collect(true);
    INFO(cancelled_result.describe(), " / ", kept.describe());
    if (cancelled_result.sqlstate() == "57014" && steady_clock::now() - started < seconds(10)) {
      ++cancelled;
    }
    if (kept.ok() && kept.value(0, 1) == "kept") ++bystanders_done;
  }
  INFO(fleet.members[0]->log_tail(20), fleet.members[1]->log_tail(20));
  CHECK(cancelled == kRounds);
  CHECK(bystanders_done == kRounds);
  // Round robin sends the cancel to the instance the client is not on (at least half the
  // time, whatever else connected in between): those were passed on to the owner.
  const int forwarded = fleet.count_in_logs("forwarded to peer");
  CHECK(forwarded >= kRounds / 2);
  MESSAGE("cross-instance cancels through HAProxy: ", cancelled, " of ", kRounds,
          " queries cancelled (", forwarded, " cancels forwarded between instances), ",
          bystanders_done, " of ", kRounds, " bystander queries answered");
}

TEST_CASE("fleet: a write's position read back through another instance (read-your-writes)") {
  empty_table("fleet_items", "id bigint PRIMARY KEY, v text");
  Fleet fleet("fleet-ryw",
              "read_write_split = \"on\"\nread_your_writes = \"client\"\n"
              "lag_check_interval_ms = 100\n");
  for (const auto& m : fleet.members) {
    REQUIRE(m->wait_for_log("replica eligible for reads", milliseconds(5000)));
  }
  // Replay stands still: a read that ignored the position would go to the replica and miss.
  ReplayPause pause;
  PgConn writer(fleet.balancer->conninfo());
  REQUIRE_MESSAGE(writer.ok(), writer.error());
  constexpr int kPairs = 200;
  int seen = 0, stale_without_token = 0;
  for (int i = 1; i <= kPairs; ++i) {
    writer.run("INSERT INTO fleet_items VALUES (" + std::to_string(i) + ", 'w')");
    const char* lsn = PQparameterStatus(writer.get(), "pgmux.last_write_lsn");
    REQUIRE(lsn != nullptr);
    PgConn reader(fleet.balancer->conninfo("options='-c pgmux.min_lsn=" + std::string(lsn) + "'"));
    REQUIRE_MESSAGE(reader.ok(), reader.error());
    if (reader.query_value("SELECT count(*) FROM fleet_items WHERE id = " + std::to_string(i)) ==
        "1") {
      ++seen;
    }
    if (i % 50 == 0) {  // the control: without the position, the paused replica answers
      PgConn plain(fleet.balancer->conninfo());
      REQUIRE_MESSAGE(plain.ok(), plain.error());
      if (plain.query_value("SELECT count(*) FROM fleet_items WHERE id = " + std::to_string(i)) ==
          "0") {
        ++stale_without_token;
      }
    }
  }
  CHECK(seen == kPairs);
  CHECK(stale_without_token == kPairs / 50);
  MESSAGE("read-your-writes across instances: ", seen, " of ", kPairs,
          " reads on a new connection saw the write (", kPairs - seen,
          " stale); without the "
          "position ",
          stale_without_token, " of ", kPairs / 50, " control reads were stale");
}
