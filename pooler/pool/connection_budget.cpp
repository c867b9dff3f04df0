// Shared connection caps across pools (max_db_connections, max_user_connections).
#include "pooler/pool/connection_budget.hpp"

namespace pgmux::pooler {

bool ConnectionBudget::try_take() {
  std::lock_guard lock(mutex_);
  if (used_ >= limit_) return false;
  ++used_;
  return true;
}

void ConnectionBudget::give() {
  std::lock_guard lock(mutex_);
  --used_;
}

bool ConnectionBudget::exhausted() const {
  std::lock_guard lock(mutex_);
  return used_ >= limit_;
}

std::string ConnectionBudget::describe() const {
  return what_ + " is reached (" + std::to_string(limit_) + " server connections)";
}

void ConnectionBudget::add_pool(const std::shared_ptr<Pool>& pool) {
  std::lock_guard lock(mutex_);
  pools_.push_back(pool);
}

std::vector<std::shared_ptr<Pool>> ConnectionBudget::pools() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Pool>> out;
  out.reserve(pools_.size());
  for (const auto& w : pools_) {
    if (auto p = w.lock()) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace pgmux::pooler
