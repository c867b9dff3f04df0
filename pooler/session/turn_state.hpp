// What a transaction-pooling session needs only while it is active (a turn running, or a
// server leased and its loop forwarding): the expectation queue, the gates the two loops
// wake each other with, and the scratch space for rewriting and holding frames. Lent from a
// per-worker free list, so a parked idle client holds none of it and an active one allocates
// nothing to get it.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pooler/net/asio_util.hpp"
#include "pooler/session/rewrite_state.hpp"

namespace pgmux::pooler {

struct TurnState : RewriteState {
  explicit TurnState(const Executor& ex) : client_gate(ex), server_gate(ex) {}

  std::optional<std::pair<std::string, std::string>> server_failure;  // SQLSTATE, message
  std::vector<asio::const_buffer> segments;
  std::string out;
  Timer client_gate;  // the client loop waits here for the server loop
  Timer server_gate;  // the server loop waits here for client writes
  // The 25006 safety net (see TransactionSession): the request and its held preamble.
  std::string retry_query;
  std::string held;

  // Empties it for the next session; capacity beyond a few kilobytes is given back.
  void reset();
};

class TurnStatePool : public asio::execution_context::service {
 public:
  // Blocks kept for reuse beyond those lent: about the number of clients active at once.
  static constexpr std::size_t kMaxFree = 128;
  using key_type = TurnStatePool;
  static inline asio::execution_context::id id;

  explicit TurnStatePool(asio::execution_context& ctx) : service(ctx) {}
  TurnStatePool(const TurnStatePool&) = delete;
  TurnStatePool& operator=(const TurnStatePool&) = delete;

  template <class Executor>
  static TurnStatePool& of(const Executor& ex) {
    return asio::use_service<TurnStatePool>(asio::query(ex, asio::execution::context));
  }

  // Only from the thread running the context (a session's own worker).
  [[nodiscard]] std::unique_ptr<TurnState> take(const Executor& ex);
  void give(std::unique_ptr<TurnState> state);
  // Frees the free blocks no one took since the last call (the worker's idle sweep).
  void trim_unused();
  // From any thread (SHOW MEM, /metrics).
  [[nodiscard]] std::size_t lent() const { return lent_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t free() const { return free_count_.load(std::memory_order_relaxed); }

 private:
  // The blocks hold timers: they go while the context's services still exist, and blocks
  // given back later (sessions destroyed during the shutdown) are deleted, not kept.
  void shutdown() override {
    shut_ = true;
    free_.clear();
    free_count_ = 0;
  }

  std::vector<std::unique_ptr<TurnState>> free_;
  std::size_t low_water_ = 0;  // the fewest free blocks since the last trim_unused()
  std::atomic<std::size_t> lent_{0}, free_count_{0};
  bool shut_ = false;
};

}  // namespace pgmux::pooler
