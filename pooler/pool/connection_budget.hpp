// A cap on server connections shared by several pools: max_db_connections (every user of one
// database) or max_user_connections (every database of one user). A pool takes a unit before it
// opens a connection and returns it when the connection closes. A pool that finds the budget
// spent queues its client and asks the other pools to close one idle connection; a unit coming
// back wakes the queued clients of the pools sharing the budget, so nobody waits for a
// connection that another pool merely keeps idle.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pgmux::pooler {

class Pool;

class ConnectionBudget {
 public:
  // `what` names the limit for error messages, e.g. max_db_connections of database "app".
  ConnectionBudget(std::string what, int limit) : what_(std::move(what)), limit_(limit) {}

  // Takes a unit; false when `limit` are in use.
  bool try_take();
  void give();
  [[nodiscard]] bool exhausted() const;
  // "max_db_connections (4) of database \"app\"", for the error a client sees.
  [[nodiscard]] std::string describe() const;

  void add_pool(const std::shared_ptr<Pool>& pool);
  // The pools sharing this budget (alive ones), for waking and idle reclaim. Called outside
  // any pool's lock: the budget's own lock is a leaf and is never held while calling a pool.
  [[nodiscard]] std::vector<std::shared_ptr<Pool>> pools() const;

 private:
  const std::string what_;
  const int limit_;
  mutable std::mutex mutex_;
  int used_ = 0;
  std::vector<std::weak_ptr<Pool>> pools_;
};

}  // namespace pgmux::pooler
