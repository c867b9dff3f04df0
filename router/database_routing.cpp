// Shared routing state of one database.
#include "router/database_routing.hpp"

#include <spdlog/spdlog.h>

namespace pgmux::router {

DatabaseRouting::DatabaseRouting(std::string name, std::vector<Endpoint> replicas,
                                 const ReplicaSelectionSettings& settings)
    : name_(std::move(name)),
      replicas_(std::move(replicas)),
      ban_time_(settings.ban_time),
      catalog_(
          std::make_shared<FunctionCatalog>(settings.write_functions, settings.read_functions)),
      write_functions_(settings.write_functions),
      read_functions_(settings.read_functions),
      banned_until_(std::make_unique<std::atomic<Clock::rep>[]>(replicas_.size())),
      reads_(std::make_unique<std::atomic<std::uint64_t>[]>(replicas_.size())),
      manual_ban_(std::make_unique<std::atomic<bool>[]>(replicas_.size())),
      balancer_(settings.balancing, static_cast<int>(replicas_.size())),
      lag_(std::make_shared<lag::LagState>(static_cast<int>(replicas_.size()))) {
  for (std::size_t i = 0; i < replicas_.size(); ++i) {
    banned_until_[i].store(0);
    reads_[i].store(0);
    manual_ban_[i].store(false);
  }
}

std::shared_ptr<const FunctionCatalog> DatabaseRouting::catalog() const {
  std::lock_guard lock(catalog_mutex_);
  return catalog_;
}

bool DatabaseRouting::begin_catalog_load() {
  if (catalog()->loaded()) return false;
  return !loading_.exchange(true);
}

void DatabaseRouting::finish_catalog_load(NameSet side_effect_free) {
  const std::size_t n = side_effect_free.size();
  {
    std::lock_guard lock(catalog_mutex_);
    auto fresh = std::make_shared<FunctionCatalog>(write_functions_, read_functions_);
    fresh->set_side_effect_free(std::move(side_effect_free));
    catalog_ = std::move(fresh);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  loading_ = false;
  spdlog::info("database {}: read {} side-effect-free function names from pg_proc", name_, n);
}

void DatabaseRouting::reset_catalog(std::vector<std::string> write_functions,
                                    std::vector<std::string> read_functions) {
  {
    std::lock_guard lock(catalog_mutex_);
    write_functions_ = std::move(write_functions);
    read_functions_ = std::move(read_functions);
    catalog_ = std::make_shared<FunctionCatalog>(write_functions_, read_functions_);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);  // per-worker caches start over
}

void DatabaseRouting::abandon_catalog_load() {
  loading_ = false;
}

void DatabaseRouting::set_manual_ban(int replica, bool on) {
  manual_ban_[static_cast<std::size_t>(replica)].store(on);
  if (!on) banned_until_[static_cast<std::size_t>(replica)].store(0);
  const Endpoint& e = replicas_[static_cast<std::size_t>(replica)];
  spdlog::info("database {}: replica {}:{} {}", name_, e.host, e.port,
               on ? "banned by an operator (BAN) until UNBAN" : "unbanned (UNBAN)");
}

bool DatabaseRouting::eligible(int replica, lag::Lsn min_lsn) const {
  if (manual_ban_[static_cast<std::size_t>(replica)].load(relaxed)) return false;
  const auto until = banned_until_[static_cast<std::size_t>(replica)].load(relaxed);
  if (until != 0 && Clock::now().time_since_epoch().count() < until) return false;
  if (!monitored_.load(relaxed)) return true;
  const lag::ReplicaLagState& s = lag_->replica(replica);
  if (!s.eligible.load(relaxed) || s.replay_lsn.load(relaxed) < min_lsn) return false;
  const auto now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  return !lag_->stale(s, now_ns);
}

bool DatabaseRouting::answering(int replica) const {
  if (ban_left_ms(replica) > 0) return false;
  if (!monitored_.load(relaxed)) return true;
  const auto now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  return !lag_->stale(lag_->replica(replica), now_ns);
}

std::int64_t DatabaseRouting::ban_left_ms(int replica) const {
  const auto until = banned_until_[static_cast<std::size_t>(replica)].load(relaxed);
  const auto now = Clock::now().time_since_epoch().count();
  if (until == 0 || now >= until) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration(until - now))
      .count();
}

bool DatabaseRouting::any_eligible(lag::Lsn min_lsn) const {
  for (int i = 0; i < replica_count(); ++i) {
    if (eligible(i, min_lsn)) return true;
  }
  return false;
}

void DatabaseRouting::note_user_write(const std::string& user, lag::Lsn lsn) {
  std::lock_guard lock(user_writes_mutex_);
  auto& at = user_writes_[user];
  at = std::max(at, lsn);
}

lag::Lsn DatabaseRouting::user_write(const std::string& user) const {
  std::lock_guard lock(user_writes_mutex_);
  auto it = user_writes_.find(user);
  return it == user_writes_.end() ? 0 : it->second;
}

void DatabaseRouting::ban(int replica, const std::string& why) {
  const auto until = (Clock::now() + ban_time_).time_since_epoch().count();
  const auto before = banned_until_[static_cast<std::size_t>(replica)].exchange(until);
  if (before == 0 || Clock::now().time_since_epoch().count() >= before) {
    const Endpoint& e = replicas_[static_cast<std::size_t>(replica)];
    spdlog::warn("database {}: replica {}:{} banned for replica_ban_ms ({} ms): {}", name_, e.host,
                 e.port, ban_time_.count(), why);
  }
}

std::optional<int> DatabaseRouting::pick(bool primary_too, std::span<const int> active_per_replica,
                                         int primary_active, lag::Lsn min_lsn) {
  boost::container::small_vector<Candidate, 8> candidates;  // no allocation per pick
  for (int i = 0; i < replica_count(); ++i) {
    if (!eligible(i, min_lsn)) continue;
    candidates.push_back({.index = i,
                          .weight = replicas_[static_cast<std::size_t>(i)].weight,
                          .active = active_per_replica[static_cast<std::size_t>(i)]});
  }
  if (candidates.empty()) return std::nullopt;
  if (primary_too) candidates.push_back({.index = -1, .weight = 1, .active = primary_active});
  std::lock_guard lock(balancer_mutex_);
  return candidates[balancer_.pick(candidates)].index;
}

}  // namespace pgmux::router
