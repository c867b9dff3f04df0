// A replica whose network link is cut: every packet to and from its port is dropped
// (nftables), as a failed switch or a changed security group shows it: silence, no reset, no
// error. Reads in flight on it run again on the primary once replica_read_timeout_ms has
// passed with its lag samples stopped; new reads go to the primary from the moment its samples
// are stale; no client stalls meanwhile; once the link is back it is readmitted.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "command.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "read_load.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

// Drops every TCP packet to or from `port` on this machine while alive (loopback included).
// The rules live in a table of their own, removed when destroyed whatever the test did.
class LinkCut {
 public:
  explicit LinkCut(std::uint16_t port) {
    const std::string p = std::to_string(port);
    nft({"delete", "table", "inet", kTable}, true);  // left by a crashed run, if any
    nft({"add", "table", "inet", kTable});
    nft({"add", "chain", "inet", kTable, "input", "{ type filter hook input priority 0; }"});
    nft({"add", "rule", "inet", kTable, "input", "tcp", "dport", p, "drop"});
    nft({"add", "rule", "inet", kTable, "input", "tcp", "sport", p, "drop"});
  }
  ~LinkCut() { nft({"delete", "table", "inet", kTable}, true); }
  LinkCut(const LinkCut&) = delete;
  LinkCut& operator=(const LinkCut&) = delete;

 private:
  static constexpr const char* kTable = "pgmux_fault_test";
  static void nft(std::vector<std::string> args, bool may_fail = false) {
    args.insert(args.begin(), "nft");
    const CommandResult r = run_command({.argv = args, .timeout = milliseconds(10000)});
    if (!may_fail) REQUIRE_MESSAGE(r.exit_code == 0, "nft: ", r.describe());
  }
};

}  // namespace

TEST_CASE("fault: a replica whose link is cut stalls no client and costs no read") {
  PgmuxProcess px(test_env(), routed_with_read_timeout("replica-cut"));
  INFO(px.log_tail());
  REQUIRE(px.wait_for_log("replica eligible for reads", milliseconds(5000)));
  ReadLoad load(px, 8, slow_or_quick_read);
  REQUIRE(wait_until([&] { return load.count("replica") > 50; }, milliseconds(10000)));
  const std::string before = px.resources();
  const auto cut_at = Clock::now();
  {
    LinkCut cut(test_env().cluster().replica_port());
    // Nobody waits for it: reads go on, on the primary, while the link is down.
    const int primary_at_cut = load.count("primary");
    CHECK(wait_until([&] { return load.count("primary") > primary_at_cut + 100; },
                     milliseconds(3000)));
    MESSAGE("link cut: 100 reads done on the primary ", seconds_since(cut_at), " s after the cut");
    std::this_thread::sleep_for(milliseconds(3000) - (Clock::now() - cut_at));
  }
  const auto restored = Clock::now();
  const int replica_at_restore = load.count("replica");
  CHECK(wait_until([&] { return load.count("replica") > replica_at_restore + 20; },
                   milliseconds(20000)));
  MESSAGE("link cut: reads back on the replica ", seconds_since(restored),
          " s after the link was restored");
  load.stop();
  for (const auto& [place, n] : load.outcomes()) MESSAGE("link cut: ", n, " reads ", place);
  MESSAGE("link cut: longest read ", load.longest(),
          " s (replica_read_timeout_ms 400, lag_stale_after_ms 500); reads re-run on the "
          "primary: ",
          reads_rerun(px));
  CHECK(load.failed() == 0);
  CHECK(load.longest() < 2.0);
  MESSAGE("link cut: before ", before, "; after ", px.resources());
}
