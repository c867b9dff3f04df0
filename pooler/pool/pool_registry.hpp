// The pools of one pgmux process, created on first use per (database, user) and shared by all
// workers. Lookups happen once per client login, not per message.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "pooler/config/config.hpp"
#include "pooler/pool/connection_budget.hpp"
#include "pooler/pool/pool.hpp"
#include "router/database_routing.hpp"

namespace pgmux::pooler {

using router::DatabaseRouting;

class PoolRegistry {
 public:
  explicit PoolRegistry(int workers) : workers_(workers) {}

  // The pool for this database and user on the primary (target -1) or on replica `target`,
  // created with the config's settings.
  std::shared_ptr<Pool> get(const Config& config, const DatabaseConfig& db, const UserConfig& user,
                            int target = -1);
  // What pgmux logs in to servers with as this user, shared by all the user's pools.
  std::shared_ptr<ServerCredentials> credentials(const UserConfig& user);
  // The routing state of this database.
  std::shared_ptr<DatabaseRouting> routing(const DatabaseConfig& db);
  // RELOAD: applies the new config's sizes, limits and timeouts to the existing pools.
  void reconfigure(const Config& config);
  // PAUSE/RESUME: database name, or empty for all. Pools created while paused start paused.
  // Returns false for RESUME when nothing was paused.
  bool set_paused(const std::string& database, bool on);
  [[nodiscard]] bool paused(const std::string& database) const {
    std::lock_guard lock(mutex_);
    return paused_.contains("") || paused_.contains(database);
  }
  [[nodiscard]] bool paused_anything() const {
    std::lock_guard lock(mutex_);
    return !paused_.empty();
  }
  // Leased server connections of the pools of `database` (all when empty).
  [[nodiscard]] int active_servers(const std::string& database) const;
  // Every open server connection (SHOW SERVERS).
  [[nodiscard]] const ServerRegistry& servers() const { return servers_; }
  ServerRegistry& servers() { return servers_; }
  // Every database's routing state created so far (admin console).
  [[nodiscard]] std::vector<std::shared_ptr<DatabaseRouting>> routings() const;
  void for_each(const std::function<void(Pool&)>& fn) const;
  // The pools as they are now, for work that awaits (a callback under the lock cannot).
  [[nodiscard]] std::vector<std::shared_ptr<Pool>> all() const;

 private:
  ServerRegistry servers_;  // first: outlives the pools and their connections
  static PoolSettingsView settings_for(const Config& config, const DatabaseConfig& db, int target);
  ServerLogin login_for(const Config& config, const DatabaseConfig& db, const UserConfig& user,
                        int target);

  std::shared_ptr<ServerCredentials> credentials_locked(const UserConfig& user);
  std::shared_ptr<DatabaseRouting> routing_locked(const DatabaseConfig& db);
  int workers_;
  // SCRAM key derivation (PBKDF2) for server logins: one thread, off every worker. Declared
  // before the pools, whose connections may be awaiting it, so it outlives them.
  asio::thread_pool kdf_{1};
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ServerCredentials>> credentials_;
  std::map<std::tuple<std::string, std::string, int>, std::shared_ptr<Pool>> pools_;
  std::map<std::string, std::shared_ptr<DatabaseRouting>> routing_;
  std::set<std::string> paused_;  // "" = everything
  // Shared caps, created with the first pool that needs them.
  std::map<std::string, std::shared_ptr<ConnectionBudget>> db_budgets_, user_budgets_;
  std::atomic<std::uint64_t> server_ids_{0};
};

}  // namespace pgmux::pooler
