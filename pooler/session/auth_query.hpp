// auth_query: secrets of users who are not in the config, fetched from the primary of the
// database a client asks for ([pgmux] auth_user logs in, auth_query returns the user's name
// and rolpassword with $1 for the name). An expired VALID UNTIL, a NULL password or no row
// is a failed login like a wrong password. Answers are cached per database and user for
// auth_cache_ttl_ms; after half of that a login uses the cached answer and refreshes it in
// the background, so a busy user never waits for the query and a changed or revoked
// password takes effect within the TTL. The cache is bounded.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

class PoolRegistry;

// A user built from a rolpassword value ("SCRAM-SHA-256$…", "md5…"); nullopt for anything
// else (NULL, empty, unknown format). Pure, for tests.
[[nodiscard]] std::optional<UserConfig> user_from_secret(const std::string& name,
                                                         const std::string& secret,
                                                         const PoolSettings& pool);
// auth_query with $1 replaced by `user` as a quoted literal (standard_conforming_strings).
[[nodiscard]] std::string bind_auth_query(const std::string& query, const std::string& user);

class AuthQueryCache {
 public:
  static constexpr std::size_t kMaxEntries = 10000;
  explicit AuthQueryCache(PoolRegistry& pools) : pools_(pools) {}

  // The user as the primary of `db` describes it; null when it cannot log in. Throws
  // SessionError-like failures as ServerError when the query cannot run.
  // (Arguments by reference: coroutine arguments by value inside a co_await miscompile with
  // GCC 12; `config` keeps `db` alive and must outlive the call.)
  awaitable<std::shared_ptr<const UserConfig>> lookup(const std::shared_ptr<const Config>& config,
                                                      const DatabaseConfig& db,
                                                      const std::string& user, asio::io_context& io,
                                                      int worker);
  [[nodiscard]] std::size_t size() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::shared_ptr<const UserConfig> user;  // null: no such login
    Clock::time_point fetched;
    bool refreshing = false;
  };
  awaitable<std::shared_ptr<const UserConfig>> fetch(const std::shared_ptr<const Config>& config,
                                                     const DatabaseConfig& db,
                                                     const std::string& user, asio::io_context& io,
                                                     int worker);
  void store(const std::string& key, std::shared_ptr<const UserConfig> user);

  PoolRegistry& pools_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // database '\0' user
};

}  // namespace pgmux::pooler
