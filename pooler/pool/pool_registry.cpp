// Lazily created pools keyed by (database, user).
#include "pooler/pool/pool_registry.hpp"

#include <spdlog/spdlog.h>

namespace pgmux::pooler {

PoolSettingsView PoolRegistry::settings_for(const Config& config, const DatabaseConfig& db,
                                            int target) {
  const bool replica = target >= 0;
  const int size = replica ? db.replica_pool_size : db.pool_size;
  return {.size = size,
          .connect_timeout = Millis(config.pool.server_connect_timeout_ms),
          .idle_timeout = Millis(config.pool.server_idle_timeout_ms),
          .lifetime = Millis(config.pool.server_lifetime_ms),
          .check_query = config.pool.server_check_query,
          .check_delay = Millis(config.pool.server_check_delay_ms),
          .min_size = std::min(config.pool.min_pool_size, size),
          .reserve_size = replica ? 0 : db.reserve_pool_size,
          .reserve_timeout = Millis(config.pool.reserve_pool_timeout_ms),
          .login_retry = Millis(config.pool.server_login_retry_ms),
          .server_wait = replica ? Millis(0) : Millis(config.pool.primary_wait_ms)};
}

std::shared_ptr<ServerCredentials> PoolRegistry::credentials(const UserConfig& user) {
  std::lock_guard lock(mutex_);
  return credentials_locked(user);
}

std::shared_ptr<ServerCredentials> PoolRegistry::credentials_locked(const UserConfig& user) {
  auto& slot = credentials_[user.name];
  if (!slot) {
    slot = std::make_shared<ServerCredentials>(user.server_password, user.md5_hash, kdf_);
  } else {
    slot->update(user.server_password, user.md5_hash);
  }
  return slot;
}

namespace {

TcpKeepalive server_keepalive(const GeneralSettings& g) {
  TcpKeepalive k = g.tcp_keepalive;
  k.user_timeout_ms = g.server_tcp_user_timeout_ms;
  return k;
}

}  // namespace

ServerLogin PoolRegistry::login_for(const Config& config, const DatabaseConfig& db,
                                    const UserConfig& user, int target) {
  return {.endpoint = target >= 0 ? db.replicas.at(static_cast<std::size_t>(target)) : db.primary,
          .database = db.name,
          .dbname = db.dbname,
          .user = user.name,
          .credentials = credentials_locked(user),
          .auth = config.general.server_auth,
          .max_message_size = config.general.max_message_size_bytes,
          .registry = &servers_,
          .tls_mode = db.server_tls.mode,
          .tls = db.server_tls_context,
          .keepalive = server_keepalive(config.general)};
}

void PoolRegistry::reconfigure(const Config& config) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, routing] : routing_) {
    if (const DatabaseConfig* db = config.find_database(name)) {
      routing->reset_catalog(db->routing.write_functions, db->routing.read_functions);
    }
  }
  for (const auto& [key, pool] : pools_) {
    const auto& [database, user, target] = key;
    const DatabaseConfig* db = config.find_database(database);
    const UserConfig* u = config.find_user(user);
    if (db == nullptr || u == nullptr) continue;  // drains as clients leave
    if (target >= static_cast<int>(db->replicas.size())) continue;
    pool->update_settings(settings_for(config, *db, target));
    // A moved server (a new primary after a failover): new connections go to the new one,
    // connections to the old one close now if idle, else when their client releases them.
    ServerLogin fresh = login_for(config, *db, *u, target);
    // A moved replica needs a restart (its lag monitor and routing state stay put): keep the
    // replica pool where it is, taking only new credentials.
    if (target >= 0) fresh.endpoint = pool->login().endpoint;
    if (const auto old = pool->update_login(std::move(fresh))) {
      const int marked = servers_.mark_close_needed(database, &old->endpoint);
      const int closed = pool->close_marked_idle();
      spdlog::info(
          "pool {}/{}: server moved from {}:{} to {}:{}; {} connection(s) to the old one "
          "close as they are released ({} idle closed now)",
          database, user, old->endpoint.host, old->endpoint.port,
          target >= 0 ? db->replicas[static_cast<std::size_t>(target)].host : db->primary.host,
          target >= 0 ? db->replicas[static_cast<std::size_t>(target)].port : db->primary.port,
          marked, closed);
    }
  }
}

std::shared_ptr<DatabaseRouting> PoolRegistry::routing(const DatabaseConfig& db) {
  std::lock_guard lock(mutex_);
  return routing_locked(db);
}

std::shared_ptr<DatabaseRouting> PoolRegistry::routing_locked(const DatabaseConfig& db) {
  auto& slot = routing_[db.name];
  if (!slot) {
    slot = std::make_shared<DatabaseRouting>(
        db.name, db.replicas,
        router::ReplicaSelectionSettings{
            .ban_time = std::chrono::milliseconds(db.routing.replica_ban_ms),
            .balancing = db.routing.load_balancing,
            .write_functions = db.routing.write_functions,
            .read_functions = db.routing.read_functions});
  }
  return slot;
}

std::shared_ptr<Pool> PoolRegistry::get(const Config& config, const DatabaseConfig& db,
                                        const UserConfig& user, int target) {
  std::lock_guard lock(mutex_);
  auto& slot = pools_[{db.name, user.name, target}];
  if (!slot) {
    const bool replica = target >= 0;
    ServerLogin login = login_for(config, db, user, target);
    PoolSettingsView settings = settings_for(config, db, target);
    // The caps protect the primary's max_connections; replica pools are bounded by their size.
    std::vector<std::shared_ptr<ConnectionBudget>> budgets;
    if (db.max_db_connections > 0 && !replica) {
      auto& b = db_budgets_[db.name];
      if (!b) {
        b = std::make_shared<ConnectionBudget>("max_db_connections of database \"" + db.name + "\"",
                                               db.max_db_connections);
      }
      budgets.push_back(b);
    }
    if (user.max_user_connections > 0 && !replica) {
      auto& b = user_budgets_[user.name];
      if (!b) {
        b = std::make_shared<ConnectionBudget>("max_user_connections of user \"" + user.name + "\"",
                                               user.max_user_connections);
      }
      budgets.push_back(b);
    }
    slot = std::make_shared<Pool>(db.name, user.name, std::move(login), settings, workers_,
                                  server_ids_, budgets, target);
    for (const auto& b : budgets) b->add_pool(slot);
    const std::weak_ptr<DatabaseRouting> routing = routing_locked(db);
    if (replica) {
      slot->set_answering([routing, target] {
        const auto r = routing.lock();
        return !r || r->answering(target);
      });
    } else {
      slot->set_server_sampled([routing] {
        const auto r = routing.lock();
        return r ? r->lag()->primary_answered_at_ns.load(std::memory_order_relaxed) : 0;
      });
      if (db.follow_promotion) {
        slot->set_fenced([routing] {
          const auto r = routing.lock();
          return r && r->primary_fenced();
        });
      }
    }
    if (paused_.contains("") || paused_.contains(db.name)) slot->set_paused(true);
  }
  return slot;
}

bool PoolRegistry::set_paused(const std::string& database, bool on) {
  std::lock_guard lock(mutex_);
  if (!on) {
    const bool was = database.empty() ? !paused_.empty() : paused_.erase(database) > 0;
    if (database.empty()) paused_.clear();
    for (const auto& [key, pool] : pools_) {
      const bool still = paused_.contains("") || paused_.contains(std::get<0>(key));
      pool->set_paused(still);
    }
    return was;
  }
  paused_.insert(database);
  for (const auto& [key, pool] : pools_) {
    if (database.empty() || std::get<0>(key) == database) pool->set_paused(true);
  }
  return true;
}

int PoolRegistry::active_servers(const std::string& database) const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& [key, pool] : pools_) {
    if (database.empty() || std::get<0>(key) == database) n += pool->active_count();
  }
  return n;
}

std::vector<std::shared_ptr<DatabaseRouting>> PoolRegistry::routings() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<DatabaseRouting>> out;
  for (const auto& [name, r] : routing_) out.push_back(r);
  return out;
}

std::vector<std::shared_ptr<Pool>> PoolRegistry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& [key, pool] : pools_) out.push_back(pool);
  return out;
}

void PoolRegistry::for_each(const std::function<void(Pool&)>& fn) const {
  std::lock_guard lock(mutex_);
  for (const auto& [key, pool] : pools_) fn(*pool);
}

}  // namespace pgmux::pooler
