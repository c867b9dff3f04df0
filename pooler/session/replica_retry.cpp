// The re-run on the primary of a read a replica refused as a write (25006) or failed before
// answering (57P01-57P03, or its connection lost): the server inspector keeps the request
// (session_protocol.hpp, the replica safety net) and the client loop runs it here.
#include <spdlog/spdlog.h>

#include <utility>

#include "pooler/runtime.hpp"
#include "pooler/session/client_inspector.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"

namespace pgmux::pooler {

awaitable<void> TransactionSession::retry_on_primary() {
  if (state_.retry_lost) co_await drop_lost_replica();
  // The replica refused the last request as a write: wait for it to be handed back (the
  // server loop does at the dropped ReadyForQuery), then run the request on the primary.
  while (lease_ || internal_ || server_loop_running_) {
    if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
    co_await wait(live_->client_gate);
  }
  state_.retry_pending = false;
  live_->held.clear();
  const std::string_view frame(live_->retry_query);
  const std::uint32_t length = pr::read_be32(frame.data() + 1);
  router::Reason reason = router::Reason::retried_after_replica_loss;
  if (std::exchange(state_.retry_lost, false)) {
    spdlog::info("{} its replica failed before answering a read: running it on the primary",
                 label());
  } else {
    if (auto sql = request_sql(frame[0], frame.substr(pr::kTaggedHeaderSize, length - 4))) {
      s_.worker.classifications.mark_write(*sql);  // next time straight to the primary
    }
    spdlog::info("{} a replica refused a statement as a write (25006): running it on the primary",
                 label());
    state_.first_kind = router::StatementKind::write;
    reason = router::Reason::retried_on_primary;
  }
  co_await ensure_server({.target = router::Target::primary, .reason = reason});
  live_->edits.clear();
  live_->scratch.clear();
  ClientInspector inspector{state_, *live_, *lease_, label(), live_->retry_query.data()};
  pr::FrameScanner scanner(s_.client.max_message_size());
  const auto r = scanner.scan(live_->retry_query, inspector);
  if (inspector.violation || r.forwardable != live_->retry_query.size()) {
    fail("08P01", "protocol violation: invalid message frame from client");
  }
  if (s_.config.pool.query_timeout_ms > 0) request_started_ = std::chrono::steady_clock::now();
  build_segments(live_->retry_query.data(), r.forwardable);
  state_.server_write_cut = true;
  auto [ec, n] = co_await asio::async_write(lease_->io().stream(), segments_view(), as_result);
  if (ec) fail("08006", "server connection lost: the server closed the connection unexpectedly");
  state_.server_write_cut = false;
}

awaitable<void> TransactionSession::drop_lost_replica() {
  // The server loop ends at the lost connection (or the error before it); then the broken
  // server is closed, with what was expected of it.
  while (server_loop_running_ || internal_) co_await wait(live_->client_gate);
  if (!lease_) co_return;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  lease_.discard();
  lease_ = ServerLease();
  live_->expect.clear();
  state_.in_copy = state_.server_write_cut = state_.boundary_pending = false;
  publish_phase();
}

}  // namespace pgmux::pooler
