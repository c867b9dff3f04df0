// auth_query lookups and their bounded, self-refreshing cache.
#include "pooler/session/auth_query.hpp"

#include <spdlog/spdlog.h>

#include "pooler/pool/pool_registry.hpp"
#include "protocol/md5.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

std::optional<UserConfig> user_from_secret(const std::string& name, const std::string& secret,
                                           const PoolSettings& pool) {
  UserConfig u;
  u.name = name;
  u.max_user_connections = pool.max_user_connections;
  if (secret.starts_with("SCRAM-SHA-256$")) {
    auto parsed = protocol::parse_scram_secret(secret);
    if (!parsed) return std::nullopt;
    u.auth = AuthMethod::scram_sha_256;
    u.scram_secret = *parsed;
  } else if (secret.size() == 35 && secret.starts_with("md5")) {
    u.auth = AuthMethod::md5;
    u.md5_hash = secret;
  } else {
    return std::nullopt;  // NULL (expired VALID UNTIL), empty, or a format pgmux cannot use
  }
  // No server_password: pgmux logs in to the server with what the client proves (SCRAM
  // pass-through) or with the md5 hash itself.
  return u;
}

std::string bind_auth_query(const std::string& query, const std::string& user) {
  std::string literal = "'";
  for (char c : user) {
    if (c == '\'') literal += '\'';
    literal += c;
  }
  literal += '\'';
  std::string out;
  for (std::size_t i = 0; i < query.size(); ++i) {
    if (query[i] == '$' && i + 1 < query.size() && query[i + 1] == '1' &&
        (i + 2 >= query.size() || !std::isdigit(static_cast<unsigned char>(query[i + 2])))) {
      out += literal;
      ++i;
    } else {
      out += query[i];
    }
  }
  return out;
}

std::size_t AuthQueryCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

awaitable<std::shared_ptr<const UserConfig>> AuthQueryCache::lookup(
    const std::shared_ptr<const Config>& config, const DatabaseConfig& db, const std::string& user,
    asio::io_context& io, int worker) {
  const std::string key = db.name + '\0' + user;
  const auto ttl = Millis(config->general.auth_cache_ttl_ms);
  std::optional<Entry> cached;
  bool refresh = false;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end() && Clock::now() - it->second.fetched < ttl) {
      cached = it->second;
      if (!it->second.refreshing && Clock::now() - it->second.fetched >= ttl / 2) {
        it->second.refreshing = refresh = true;
      }
    }
  }
  if (refresh) {
    // Served from the cache now; the fresh answer replaces it for later logins.
    asio::co_spawn(
        io,
        [this, config, &db, user, key, &io, worker]() -> awaitable<void> {
          try {
            store(key, co_await fetch(config, db, user, io, worker));
          } catch (const std::exception& e) {
            spdlog::warn("auth_query refresh for user \"{}\" in database {} failed: {}", user,
                         db.name, e.what());
            std::lock_guard lock(mutex_);
            if (auto it = entries_.find(key); it != entries_.end()) it->second.refreshing = false;
          }
        },
        asio::detached);
  }
  if (cached) co_return cached->user;
  auto fresh = co_await fetch(config, db, user, io, worker);
  store(key, fresh);
  co_return fresh;
}

void AuthQueryCache::store(const std::string& key, std::shared_ptr<const UserConfig> user) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= kMaxEntries && !entries_.contains(key)) {
    // Bounded: drop the oldest answer (a scan, but only when full).
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.fetched < oldest->second.fetched) oldest = it;
    }
    entries_.erase(oldest);
  }
  entries_[key] = Entry{std::move(user), Clock::now(), false};
}

awaitable<std::shared_ptr<const UserConfig>> AuthQueryCache::fetch(
    const std::shared_ptr<const Config>& config, const DatabaseConfig& db, const std::string& user,
    asio::io_context& io, int worker) {
  const UserConfig* auth_user = config->find_user(config->general.auth_user);
  if (auth_user == nullptr) co_return nullptr;  // validated at load; a RELOAD race at worst
  auto pool = pools_.get(*config, db, *auth_user);
  ServerLease lease =
      co_await pool->acquire(io, worker, Millis(config->pool.query_wait_timeout_ms));
  const std::string sql = bind_auth_query(config->general.auth_query, user);
  const auto rows = co_await lease->query_pairs(sql);
  lease.give_back();
  for (const auto& [name, secret] : rows) {
    if (name != user) continue;
    if (auto u = user_from_secret(user, secret, config->pool)) {
      co_return std::make_shared<const UserConfig>(std::move(*u));
    }
  }
  co_return nullptr;
}

}  // namespace pgmux::pooler
