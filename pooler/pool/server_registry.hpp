// Every open server connection of this process, for SHOW SERVERS. A connection registers in
// its constructor and leaves in its destructor; a snapshot copies what never changes after
// login (id, label, backend pid, endpoint, times) under the registry's lock, so it never
// reads a field the owning worker is writing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

class ServerConnection;

struct ServerRow {
  std::uint64_t id = 0;
  std::string user, database, host;
  std::uint16_t port = 0;
  std::int32_t backend_pid = 0;
  std::chrono::system_clock::time_point connected_at;
  bool close_needed = false;
  int prepared_statements = 0;
  std::int64_t prepared_bytes = 0;
  std::string tls;  // "TLSv1.3/TLS_AES_256_GCM_SHA384", empty for plain text
};

class ServerRegistry {
 public:
  void add(std::uint64_t id, ServerConnection* c);
  void remove(std::uint64_t id);
  [[nodiscard]] std::vector<ServerRow> snapshot() const;
  // RECONNECT/KILL: marks every connection of `database` (pgmux's name; all when empty) to be
  // closed when it is next idle. Returns how many were marked.
  // With `only`, just the connections to that server.
  int mark_close_needed(const std::string& database, const Endpoint* only = nullptr);
  // WAIT_CLOSE: connections of `database` (all when empty) still marked.
  [[nodiscard]] int count_close_needed(const std::string& database) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::uint64_t, ServerConnection*> live_;
};

}  // namespace pgmux::pooler
