// The logged-in clients of this process, for SHOW CLIENTS: each session registers itself and
// updates its state; the console reads a snapshot. Only the registry's map is locked; a
// client's state is an atomic its own worker writes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pgmux::pooler {

enum class ClientState : std::uint8_t { idle, waiting, active };

// What a killed client is told (FATAL, SQLSTATE 57P01, as PostgreSQL words it).
inline constexpr const char* kAdminFarewell = "terminating connection due to administrator command";
inline constexpr const char* kShutdownFarewell =
    "terminating connection because pgmux is shutting down";

struct Worker;
class FramedSocket;

struct ClientInfo : std::enable_shared_from_this<ClientInfo> {
  std::uint64_t id = 0;
  std::string user, database, address, application_name;
  std::uint16_t port = 0;
  std::chrono::system_clock::time_point connected_at = std::chrono::system_clock::now();
  std::atomic<ClientState> state{ClientState::idle};
  std::atomic<std::int64_t> waiting_since_us{0};  // steady clock, while waiting
  // Transaction pooling: why the client is pinned to its server ("" when it is not).
  std::atomic<const char*> pinned{""};
  std::atomic<int> prepared_statements{0};      // named statements the client has defined
  std::atomic<std::int64_t> prepared_bytes{0};  // heap bytes their definitions hold
  // KILL_CLIENT, KILL db, shutdown: stops reading from the client, from its own worker. A
  // client without a server is told why (FATAL 57P01 with `why`, a string literal); one in
  // the middle of an answer is cut off. With `only_if_idle`, a client that holds a server by
  // the time the kill runs is left alone. Callable from any thread.
  void kill(const char* why, bool only_if_idle) {
    if (kill_fn != nullptr) kill_fn(*this, why, only_if_idle);
  }
  // Set by the session: the function that posts the kill to its worker, and what it needs
  // (plain pointers rather than a std::function: an idle client should cost little).
  using KillFn = void (*)(ClientInfo& client, const char* why, bool only_if_idle);
  KillFn kill_fn = nullptr;
  Worker* worker = nullptr;
  FramedSocket* socket = nullptr;  // touched only on the worker while `alive`
  // Read and written only on the session's worker.
  bool alive = true;
  bool killed = false;
  const char* farewell = nullptr;  // the FATAL message for a client killed between requests
};

class ClientRegistry {
 public:
  void add(const std::shared_ptr<ClientInfo>& c) {
    std::lock_guard lock(mutex_);
    clients_[c->id] = c;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    clients_.erase(id);
  }
  [[nodiscard]] std::shared_ptr<ClientInfo> find(std::uint64_t id) const {
    std::lock_guard lock(mutex_);
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second;
  }
  [[nodiscard]] std::vector<std::shared_ptr<ClientInfo>> snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<ClientInfo>> out;
    out.reserve(clients_.size());
    for (const auto& [id, c] : clients_) out.push_back(c);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::shared_ptr<ClientInfo>> clients_;
};

// Marks a client waiting for a server for as long as it lives, then active (or idle).
class WaitingFor {
 public:
  explicit WaitingFor(ClientInfo* c) : c_(c) {
    if (c_ == nullptr) return;
    c_->waiting_since_us.store(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
    c_->state.store(ClientState::waiting);
  }
  void got_server() {
    if (c_ != nullptr) c_->state.store(ClientState::active);
    c_ = nullptr;
  }
  ~WaitingFor() {
    if (c_ != nullptr) c_->state.store(ClientState::idle);
  }
  WaitingFor(const WaitingFor&) = delete;
  WaitingFor& operator=(const WaitingFor&) = delete;

 private:
  ClientInfo* c_;
};

}  // namespace pgmux::pooler
