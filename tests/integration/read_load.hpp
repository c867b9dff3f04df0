// Readers through pgmux for the fault tests: each runs a read on its own connection until
// stopped (and at most 20,000 times) and notes where it ran ("replica", "primary") or the
// error, and the longest single read. Reader i runs `sql(i)`.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
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

namespace pgmux::it {

// Transaction mode with reads routed to the replica, sampled every 100 ms, a sample stale
// after 500 ms, a failing replica banned for 1 s.
inline PgmuxOptions routed(std::string name) {
  return {.name = std::move(name),
          .pool_size = 4,
          .query_wait_timeout_ms = 10000,
          .mode = "transaction",
          .routing_toml =
              "read_write_split = \"on\"\n"
              "read_your_writes = \"off\"\n"
              "replica_ban_ms = 1000\n"
              "max_replica_lag_bytes = 100000000\n"
              "lag_check_interval_ms = 100\n"
              "lag_stale_after_ms = 500\n"};
}

// routed(), with reads that get no answer from a replica whose samples stopped given up
// after 400 ms (replica_read_timeout_ms).
inline PgmuxOptions routed_with_read_timeout(std::string name) {
  PgmuxOptions options = routed(std::move(name));
  options.routing_toml += "replica_read_timeout_ms = 400\n";
  return options;
}

class ReadLoad {
 public:
  ReadLoad(const PgmuxProcess& px, int readers, const std::function<std::string(int)>& sql) {
    for (int i = 0; i < readers; ++i) {
      threads_.emplace_back([this, &px, statement = sql(i)] { run(px, statement); });
    }
  }
  ~ReadLoad() { stop(); }
  ReadLoad(const ReadLoad&) = delete;
  ReadLoad& operator=(const ReadLoad&) = delete;

  void stop() {
    stop_ = true;
    threads_.clear();  // joined
  }
  // Reads that ran at `place` so far.
  [[nodiscard]] int count(const std::string& place) const {
    std::lock_guard lock(mutex_);
    const auto it = outcomes_.find(place);
    return it == outcomes_.end() ? 0 : it->second;
  }
  // Where reads ran ("replica", "primary") or the error they got, with their counts.
  [[nodiscard]] std::map<std::string, int> outcomes() const {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }
  // Reads that ran neither on the replica nor on the primary.
  [[nodiscard]] int failed() const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [place, k] : outcomes_) {
      if (place != "replica" && place != "primary") n += k;
    }
    return n;
  }
  [[nodiscard]] double longest() const {
    std::lock_guard lock(mutex_);
    return longest_;
  }

 private:
  void run(const PgmuxProcess& px, const std::string& statement) {
    PgConn c(px.conninfo("app", "secret"));
    for (int n = 0; n < 20000 && !stop_.load() && c.ok(); ++n) {
      const auto start = Clock::now();
      const std::string place = where(c, statement);
      std::lock_guard lock(mutex_);
      ++outcomes_[place];
      longest_ = std::max(longest_, seconds_since(start));
    }
  }

  mutable std::mutex mutex_;
  std::map<std::string, int> outcomes_;
  double longest_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::jthread> threads_;  // last: joined before the rest goes
};

// Half the readers (the even ones) read for 0.2 s, so that some are in flight at any moment.
inline std::string slow_or_quick_read(int i) {
  return i % 2 == 0 ? "SELECT pg_is_in_recovery() FROM pg_sleep(0.2)"
                    : "SELECT pg_is_in_recovery()";
}

// Reads SHOW ROUTING re-ran on the primary after their replica failed or stopped answering.
inline long long reads_rerun(const PgmuxProcess& px) {
  for (auto& row : console_rows(px, "SHOW ROUTING")) {
    if (row["reason"] == "retried_after_replica_loss") return std::stoll(row["decisions"]);
  }
  return 0;
}

}  // namespace pgmux::it
