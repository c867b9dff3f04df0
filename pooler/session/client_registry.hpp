// The logged-in clients of this process, for SHOW CLIENTS: each session registers itself and
// updates its state; the console reads a snapshot. Only the registry's map is locked; a
// client's state is an atomic its own worker writes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace pgmux::pooler {

enum class ClientState : std::uint8_t { idle, waiting, active };
// What a client's session is doing with the server it holds (SHOW CLIENTS server_phase): none
// held; held between requests (in a transaction, pinned, or session pooling); answers owed
// (request); COPY; pgmux's own queries at the transaction's end (own_queries, e.g. reading
// settings back); a write's ReadyForQuery held until its WAL position is read; a replica's
// refusal (25006) waiting to be re-run on the primary.
enum class ServerPhase : std::uint8_t {
  none,
  held,
  request,
  copy,
  own_queries,
  wal_position,
  retry_on_primary
};
[[nodiscard]] const char* to_string(ServerPhase phase);

// What a killed client is told (FATAL, SQLSTATE 57P01, as PostgreSQL words it).
inline constexpr const char* kAdminFarewell = "terminating connection due to administrator command";
inline constexpr const char* kShutdownFarewell =
    "terminating connection because pgmux is shutting down";

struct Worker;
class ClientSession;
class Pool;

struct ClientInfo : std::enable_shared_from_this<ClientInfo> {
  std::uint64_t id = 0;
  // The pool the client joined: it names the database and user, and counts the client.
  std::shared_ptr<Pool> pool;
  [[nodiscard]] const std::string& user() const;      // pool->user()
  [[nodiscard]] const std::string& database() const;  // pool->database()
  std::string address, application_name;
  std::uint16_t port = 0;
  std::chrono::system_clock::time_point connected_at = std::chrono::system_clock::now();
  std::atomic<ClientState> state{ClientState::idle};
  // Set with the first server the client takes: a drain gives a client that has not yet sent
  // its first request a moment to (runtime.cpp).
  std::atomic<bool> served{false};
  std::atomic<ServerPhase> server_phase{ServerPhase::none};  // set by the session's worker
  std::atomic<std::int64_t> waiting_since_us{0};             // steady clock, while waiting
  // Transaction pooling: why the client is pinned to its server ("" when it is not).
  std::atomic<const char*> pinned{""};
  std::atomic<int> prepared_statements{0};      // named statements the client has defined
  std::atomic<std::int64_t> prepared_bytes{0};  // heap bytes their definitions hold
  // KILL_CLIENT, KILL db, shutdown: stops reading from the client, from its own worker. A
  // client without a server is told why (FATAL 57P01 with `why`, a string literal); one in
  // the middle of an answer is cut off. With `only_if_idle`, a client that holds a server by
  // the time the kill runs is left alone. Callable from any thread.
  // (client_session.cpp: posts the kill to the session's worker.)
  void kill(const char* why, bool only_if_idle);
  void mark_active() {
    state.store(ClientState::active);
    served.store(true, std::memory_order_relaxed);
  }
  // Set by the session: where the kill runs.
  Worker* worker = nullptr;
  ClientSession* session = nullptr;  // touched only on the worker while `alive`
  // Read and written only on the session's worker.
  bool alive = true;
  bool killed = false;
  const char* farewell = nullptr;  // the FATAL message for a client killed between requests
  // TLS version and cipher (OpenSSL's static strings), null for plain text: SHOW CLIENTS.
  const char* tls_version = nullptr;
  const char* tls_cipher = nullptr;
  // ClientRegistry's links (under its mutex).
  ClientInfo* registry_prev = nullptr;
  ClientInfo* registry_next = nullptr;
};

// A client's log context, `C-<id> user@database address:port`, formatted only when a line is
// logged (debug lines on the hot path cost nothing when debug is off).
struct ClientLabel {
  const ClientInfo* info;
};

// The entries are linked through the ClientInfo objects themselves (no node per client). A
// session adds its entry once logged in and removes it when it closes, before the entry can
// go, so every linked entry is alive; lookups are for the console and scan the list.
class ClientRegistry {
 public:
  ClientRegistry() { head_.registry_prev = head_.registry_next = &head_; }
  ClientRegistry(const ClientRegistry&) = delete;
  ClientRegistry& operator=(const ClientRegistry&) = delete;
  void add(ClientInfo& c) {
    std::lock_guard lock(mutex_);
    c.registry_prev = head_.registry_prev;
    c.registry_next = &head_;
    head_.registry_prev->registry_next = &c;
    head_.registry_prev = &c;
    ++size_;
  }
  void remove(ClientInfo& c) {
    std::lock_guard lock(mutex_);
    if (c.registry_prev == nullptr) return;
    c.registry_prev->registry_next = c.registry_next;
    c.registry_next->registry_prev = c.registry_prev;
    c.registry_prev = c.registry_next = nullptr;
    --size_;
  }
  [[nodiscard]] std::shared_ptr<ClientInfo> find(std::uint64_t id) const {
    std::lock_guard lock(mutex_);
    for (ClientInfo* c = head_.registry_next; c != &head_; c = c->registry_next) {
      if (c->id == id) return c->shared_from_this();
    }
    return nullptr;
  }
  // By client id.
  [[nodiscard]] std::vector<std::shared_ptr<ClientInfo>> snapshot() const {
    std::vector<std::shared_ptr<ClientInfo>> out;
    {
      std::lock_guard lock(mutex_);
      out.reserve(size_);
      for (ClientInfo* c = head_.registry_next; c != &head_; c = c->registry_next) {
        out.push_back(c->shared_from_this());
      }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
    return out;
  }

 private:
  mutable std::mutex mutex_;
  mutable ClientInfo head_;  // the list's sentinel
  std::size_t size_ = 0;
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
    if (c_ != nullptr) c_->mark_active();
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

template <>
struct fmt::formatter<pgmux::pooler::ClientLabel> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const pgmux::pooler::ClientLabel& label, Context& ctx) const {
    if (label.info == nullptr) return fmt::format_to(ctx.out(), "C-?");
    const pgmux::pooler::ClientInfo& c = *label.info;
    return fmt::format_to(ctx.out(), "C-{} {}@{} {}:{}", c.id, c.user(), c.database(), c.address,
                          c.port);
  }
};
