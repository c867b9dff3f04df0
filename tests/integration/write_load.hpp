// Writers through pgmux for the fault tests: each runs one statement per transaction on its
// own connection until stopped (and at most 50,000 times), connecting again when pgmux closed
// its connection, and notes what each answer said: the first column of its first row (empty
// without rows), or the failure's SQLSTATE; and the longest single transaction.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

namespace pgmux::it {

// An empty table `name` (id bigserial, writer int) that the role app may write, on the server
// `admin` is connected to.
inline void fresh_write_table(PgConn& admin, const std::string& name) {
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  admin.run("CREATE TABLE IF NOT EXISTS " + name + " (id bigserial PRIMARY KEY, writer int)");
  admin.run("GRANT ALL ON " + name + ", " + name + "_id_seq TO app");
  admin.run("TRUNCATE " + name);
}

class WriteLoad {
 public:
  // `sql(i)`: the statement writer i runs.
  WriteLoad(const PgmuxProcess& px, int writers, const std::function<std::string(int)>& sql)
      : answers_(static_cast<std::size_t>(writers)) {
    for (int i = 0; i < writers; ++i) {
      threads_.emplace_back([this, &px, i, statement = sql(i)] { run(px, i, statement); });
    }
  }
  ~WriteLoad() { stop(); }
  WriteLoad(const WriteLoad&) = delete;
  WriteLoad& operator=(const WriteLoad&) = delete;

  void stop() {
    stop_ = true;
    threads_.clear();  // joined
  }
  [[nodiscard]] int committed() const { return committed_.load(); }
  // Answers (of every writer) whose first column was `value`.
  [[nodiscard]] int count(const std::string& value) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& seq : answers_)
      n += static_cast<int>(std::count(seq.begin(), seq.end(), value));
    return n;
  }
  [[nodiscard]] std::map<std::string, int> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }
  [[nodiscard]] double longest() const {
    std::lock_guard lock(mutex_);
    return longest_;
  }
  // Writer i's answers in order (read once stopped).
  [[nodiscard]] const std::vector<std::string>& answers(int i) const {
    return answers_[static_cast<std::size_t>(i)];
  }

 private:
  void run(const PgmuxProcess& px, int i, const std::string& statement) {
    auto conn = std::make_unique<PgConn>(px.conninfo("app", "secret"));
    for (int n = 0; n < 50000 && !stop_.load(); ++n) {
      if (!conn->ok()) conn = std::make_unique<PgConn>(px.conninfo("app", "secret"));
      const auto start = Clock::now();
      const PgResult r = conn->exec(statement);
      std::lock_guard lock(mutex_);
      longest_ = std::max(longest_, seconds_since(start));
      if (r.ok()) {
        committed_.fetch_add(1);
        answers_[static_cast<std::size_t>(i)].push_back(r.rows() > 0 ? r.value(0, 0) : "");
      } else {
        ++failures_[r.sqlstate().empty() ? "(none)" : r.sqlstate()];
      }
    }
  }

  mutable std::mutex mutex_;
  std::vector<std::vector<std::string>> answers_;
  std::map<std::string, int> failures_;  // by SQLSTATE
  double longest_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> committed_{0};
  std::vector<std::jthread> threads_;  // last: joined before the rest goes
};

}  // namespace pgmux::it
