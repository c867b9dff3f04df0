// Faults on the servers under load. A primary restart (pg_ctl restart -m fast) fails only the
// transactions in flight on it: those that start while it is down wait (primary_wait_ms) and
// run once it is back. On the replica, while reads are routed to it: A frozen replica (SIGSTOP of
// its postmaster and every backend, as a hung VM or a stalled disk look to pgmux) must stop
// receiving new reads as soon as its last lag sample is older than lag_stale_after_ms, even
// though the lag monitor's own query to it has not returned, and must be readmitted once it
// runs again; reads already sent to it run again on the primary once replica_read_timeout_ms
// has passed with its samples stopped, and no client waits on a login to it. A replica killed
// (kill -9 of its postmaster) under reads costs no read: one it never answered runs again on
// the primary.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "primary_watch.hpp"
#include "read_load.hpp"
#include "write_load.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

// The replica's postmaster and its children (backends, startup, walreceiver), from /proc.
std::vector<pid_t> replica_processes() {
  std::ifstream pidfile(test_env().cluster().dir() / "replica" / "postmaster.pid");
  pid_t postmaster = 0;
  pidfile >> postmaster;
  std::vector<pid_t> pids;
  if (postmaster <= 0) return pids;
  pids.push_back(postmaster);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid …: comm may hold blanks, so read after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    pid_t parent = 0;
    rest >> state >> parent;
    if (parent == postmaster) pids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return pids;
}

// Freezes the replica while alive; thaws it when destroyed, whatever the test did.
class ReplicaFreeze {
 public:
  ReplicaFreeze() : pids_(replica_processes()) {
    REQUIRE(pids_.size() >= 2);
    for (pid_t p : pids_) ::kill(p, SIGSTOP);
  }
  ~ReplicaFreeze() { thaw(); }
  void thaw() {
    for (pid_t p : pids_) ::kill(p, SIGCONT);
    pids_.clear();
  }

 private:
  std::vector<pid_t> pids_;
};

std::string replica_column(const PgmuxProcess& px, const std::string& column) {
  for (auto& row : console_rows(px, "SHOW REPLICAS")) return row[column];
  return "";
}

}  // namespace

TEST_CASE("fault: a frozen replica gets no new reads once its lag sample is stale") {
  PgmuxProcess px(test_env(), routed("replica-frozen"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  REQUIRE(where(c) == "replica");
  const std::string before = px.resources();

  ReplicaFreeze freeze;
  const auto frozen_at = Clock::now();
  // Within a sampling interval plus lag_stale_after_ms the replica is out, whatever the
  // monitor's query is doing.
  std::this_thread::sleep_for(milliseconds(100 + 500 + 200));
  // Reads from now on go to the primary, each at once. They run on another thread so that a
  // read sent to the frozen replica fails the test instead of hanging it.
  auto reads = std::async(std::launch::async, [&] {
    std::vector<std::string> places;
    double longest = 0;
    for (int i = 0; i < 20; ++i) {
      const auto start = Clock::now();
      places.push_back(where(c));
      longest = std::max(longest, seconds_since(start));
    }
    return std::make_pair(places, longest);
  });
  const bool finished = reads.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  CHECK_MESSAGE(finished, "reads hung on the frozen replica");
  CHECK(replica_column(px, "eligible") == "f");
  const std::string reason = replica_column(px, "reason");
  CHECK_MESSAGE((reason == "sample stale" || reason == "no sample"), reason);
  freeze.thaw();
  const auto [places, longest] = reads.get();
  MESSAGE("frozen replica: longest read ", longest, " s, over ", places.size(), " reads");
  for (const std::string& p : places) CHECK(p == "primary");
  CHECK(longest < 2.0);

  // Running again, it is readmitted (the monitor's back-off is at most 2 s).
  const auto thawed_at = Clock::now();
  CHECK(wait_until([&] { return where(c) == "replica"; }, milliseconds(15000)));
  MESSAGE("readmitted ", seconds_since(thawed_at), " s after it resumed (frozen for ",
          std::chrono::duration<double>(thawed_at - frozen_at).count(), " s)");
  MESSAGE("frozen replica: before ", before, "; after ", px.resources());
}

TEST_CASE("fault: reads in flight on a frozen replica run again on the primary") {
  PgmuxProcess px(test_env(), routed_with_read_timeout("replica-frozen-reads"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  {
    // Slow is not gone: a read that outlasts replica_read_timeout_ms on a replica that still
    // answers its lag monitor finishes there.
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(where(c, "SELECT pg_is_in_recovery() FROM pg_sleep(1)") == "replica");
  }
  // Eight readers, half with reads of 0.2 s so that some are in flight when the replica
  // stops; each read is timed.
  ReadLoad load(px, 8, slow_or_quick_read);
  REQUIRE(wait_until([&] { return load.count("replica") > 50; }, milliseconds(10000)));
  const std::string before = px.resources();
  {
    ReplicaFreeze freeze;
    std::this_thread::sleep_for(milliseconds(2500));
  }  // thawed: a read still stuck on it would finish now, and be counted as too long
  load.stop();
  for (const auto& [place, n] : load.outcomes()) {
    MESSAGE("replica frozen under reads: ", n, " reads ", place);
  }
  MESSAGE("longest read: ", load.longest(),
          " s (replica_read_timeout_ms 400, lag_stale_after_ms 500)");
  CHECK(load.failed() == 0);
  // Given up on within a period or two after its samples went stale (100 + 500 ms).
  CHECK(load.longest() < 2.0);
  const long long rerun = reads_rerun(px);
  MESSAGE("reads re-run on the primary: ", rerun);
  MESSAGE("replica frozen under reads: before ", before, "; after ", px.resources());
  CHECK(rerun >= 1);
  CHECK(px.wait_for_log("has not begun to answer a read", milliseconds(1000)));
}

TEST_CASE("fault: a replica killed under reads costs no read; it serves again once restarted") {
  PgmuxProcess px(test_env(), routed("replica-killed"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));

  // Four readers, each on its own connection, until told to stop (bounded in count too).
  ReadLoad load(px, 4, [](int) { return std::string("SELECT pg_is_in_recovery()"); });
  REQUIRE(wait_until([&] { return load.count("replica") > 100; }, milliseconds(10000)));
  const std::vector<pid_t> processes = replica_processes();
  REQUIRE(processes.size() >= 2);
  const std::string before = px.resources();
  ::kill(processes.front(), SIGKILL);  // the postmaster; its backends follow it out
  std::this_thread::sleep_for(milliseconds(1500));
  load.stop();
  for (const auto& [place, n] : load.outcomes()) MESSAGE("replica killed: ", n, " reads ", place);
  CHECK(load.failed() == 0);
  CHECK(load.count("primary") > 0);  // reads went on, on the primary
  MESSAGE("reads re-run on the primary after the replica failed: ", reads_rerun(px));

  // Restart it once every old process is gone (shared memory in use blocks a new postmaster).
  CHECK(wait_until(
      [&] {
        for (pid_t p : processes) {
          if (::kill(p, 0) == 0) return false;
        }
        return true;
      },
      milliseconds(10000)));
  test_env().cluster().start_replica();
  const auto restarted = Clock::now();
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(wait_until([&] { return where(c) == "replica"; }, milliseconds(20000)));
  MESSAGE("replica killed: before ", before, "; after ", px.resources());
  MESSAGE("reads returned to the restarted replica ", seconds_since(restarted),
          " s after it "
          "accepted connections again");
}

TEST_CASE("fault: a primary restart under writes fails only the transactions in flight") {
  {
    PgConn p = direct_primary();
    fresh_write_table(p, "fault_items");
  }
  PgmuxProcess px(test_env(), {.name = "primary-restart",
                               .pool_size = 4,
                               .query_wait_timeout_ms = 10000,
                               .mode = "transaction",
                               .pool_toml = "primary_wait_ms = 15000",
                               // The lag monitor runs: its samples of the primary tell the
                               // pool that the primary is back before server_login_retry_ms.
                               .routing_toml = "read_write_split = \"on\"\n"
                                               "lag_check_interval_ms = 100\n"});
  INFO(px.log_tail());

  // Writers insert one row per transaction; a writer whose connection was closed connects
  // again (pgmux closes a client whose transaction failed with its server).
  constexpr int kWriters = 6;
  WriteLoad load(px, kWriters, [](int i) {
    return "INSERT INTO fault_items (writer) VALUES (" + std::to_string(i) + ")";
  });
  REQUIRE(wait_until([&] { return load.committed() > 200; }, milliseconds(10000)));
  const std::string before = px.resources();
  const auto restart = Clock::now();
  test_env().cluster().stop_primary();
  test_env().cluster().start_primary();
  const double down = seconds_since(restart);
  const auto back = Clock::now();
  const int at_restart_end = load.committed();
  CHECK(wait_until([&] { return load.committed() > at_restart_end; }, milliseconds(15000)));
  MESSAGE("primary restart: the first commit came ", seconds_since(back),
          " s after the primary accepted connections again");
  CHECK(wait_until([&] { return load.committed() > at_restart_end + 200; }, milliseconds(15000)));
  load.stop();

  int failed = 0;
  for (const auto& [sqlstate, n] : load.failures()) {
    MESSAGE("primary restart: ", n, " transactions failed with ", sqlstate);
    failed += n;
  }
  MESSAGE("primary restart: ", load.committed(), " committed, the longest took ", load.longest(),
          " s; stop and start took ", down, " s");
  MESSAGE("primary restart: before ", before, "; after ", px.resources());
  // At most the one transaction each writer had in flight when the primary went down.
  CHECK(failed <= kWriters);
  // Each with a SQLSTATE: none is a statement that found its connection closed under it (a
  // write that committed but whose WAL position could not be read costs nothing).
  CHECK(load.failures().count("(none)") == 0);
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  CHECK(std::stoi(p.query_value("SELECT count(*) FROM fault_items")) >= load.committed());
}
