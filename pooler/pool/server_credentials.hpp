// What pgmux logs in to PostgreSQL with, for one user: the password from the config, an md5
// hash, or SCRAM keys. SCRAM keys are kept for the salt and iteration count the server asked
// for: derived once from the password (PBKDF2 is slow on purpose, so it runs on the
// key-derivation thread, never on a worker), or recovered from a client's own SCRAM proof
// when the config holds only the user's secret (pass-through: no password stored anywhere).
// Shared by every pool of the user (primary and replicas share pg_authid).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "pooler/net/asio_util.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

class ServerCredentials {
 public:
  ServerCredentials(std::string password, std::string md5_hash, asio::thread_pool& kdf)
      : password_(std::move(password)), md5_hash_(std::move(md5_hash)), kdf_(kdf) {}

  // RELOAD: new values; remembered keys are forgotten if the password changed.
  void update(const std::string& password, const std::string& md5_hash);
  [[nodiscard]] std::string password() const;
  [[nodiscard]] std::string md5_hash() const;
  // Pass-through: a client proved it holds ClientKey for the configured secret.
  void remember(protocol::ScramKeys keys);
  // True if a server login could answer SCRAM now (a password, or remembered keys).
  [[nodiscard]] bool can_answer_scram() const;
  // Keys for what the server asks: remembered ones, else derived from the password on the
  // key-derivation thread. nullopt when neither is known, or when the remembered keys are
  // for another salt (the config's secret is not the server's).
  awaitable<std::optional<protocol::ScramKeys>> keys_for(const std::string& salt, int iterations);

 private:
  mutable std::mutex mutex_;
  std::string password_, md5_hash_;
  std::optional<protocol::ScramKeys> keys_;
  asio::thread_pool& kdf_;
};

}  // namespace pgmux::pooler
