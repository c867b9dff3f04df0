// A client's turn that waits in a full pool's queue without a coroutine (see quick_turn.cpp):
// the session queues a waiter (Pool::queue_when_full) whose timer's handler, cancelled by the
// worker that gives a server back or expiring at query_wait_timeout_ms, takes the server or
// the failure and goes on with the request as the quick turn does. What needs another wait
// (a settings sync, a connection to open, the reserve pool, a paused pool) is run()'s, which
// it gets with the session as it expects it: holding the lease, or with a carried failure.
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"

namespace pgmux::pooler {

QuickTurn TransactionSession::queue_for_server() {
  if (lease_ || internal_ || routing() || server_loop_running_ || s_.session_pooling ||
      live_->server_failure || (s_.info != nullptr && s_.info->killed)) {
    return QuickTurn{};
  }
  const Millis wait(s_.config.pool.query_wait_timeout_ms);
  queued_ = s_.pool->queue_when_full(s_.worker.io, s_.worker.index, wait);
  if (!queued_) return QuickTurn{};
  queued_since_.emplace(s_.info);
  Pool::timer_of(*queued_).async_wait(asio::bind_allocator(
      SlabAllocator<void>(slabs()),
      [this, owner = s_.owner.lock()](boost::system::error_code) { on_queue_end(owner); }));
  return QuickTurn{.queued = true};
}

void TransactionSession::on_queue_end(const std::shared_ptr<void>& owner) {
  const std::shared_ptr<Pool::Waiter> waiter = std::move(queued_);
  QuickTurn next;
  try {
    Pool::QuickWaitEnd end = s_.pool->end_quick_wait(waiter, s_.worker.io, s_.worker.index,
                                                     Millis(s_.config.pool.query_wait_timeout_ms));
    if (end.lease) queued_since_->got_server();
    queued_since_.reset();
    if (end.failure) fail(end.failure->sqlstate(), end.failure->what());
    if (end.lease) next = serve_queued(std::move(*end.lease));
  } catch (...) {
    carried_failure_ = std::current_exception();
    next = QuickTurn{};
  }
  // The owner is the ClientSession that made this session (client_session.cpp).
  ClientSession::after_quick_turn(std::static_pointer_cast<ClientSession>(owner), next);
}

QuickTurn TransactionSession::serve_queued(ServerLease lease) {
  lease_ = std::move(lease);
  if (s_.info != nullptr && s_.info->killed) {
    // Killed while it waited: its request must not run. The server is untouched.
    lease_.give_back();
    lease_ = ServerLease();
    fail("57P01", s_.info->farewell != nullptr ? s_.info->farewell : kAdminFarewell);
  }
  if (client_left()) {
    lease_.give_back();  // untouched: the request of a client that left must not run
    lease_ = ServerLease();
    fail("08006", kClientLeft);
  }
  state_.start_lease(-1);
  prepare_lease();
  if (!settings_in_step()) {
    sync_pending_ = true;
    return QuickTurn{};
  }
  serve_with_lease();
  for (;;) {
    if (std::optional<QuickTurn> next = quick_step()) return *next;
  }
}

}  // namespace pgmux::pooler
