// The re-run on the primary of a read a replica refused as a write (25006) or failed before
// answering (57P01-57P03, its connection lost, or frozen past replica_read_timeout_ms): the
// server inspector keeps the request (session_protocol.hpp, the replica safety net) and the
// client loop runs it here. Also the deadlines on a server's answer: query_timeout_ms on any
// request (cancelled, the client told 57014) and replica_read_timeout_ms on a replica read.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "pooler/runtime.hpp"
#include "pooler/session/client_inspector.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"
#include "router/database_routing.hpp"

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

awaitable<void> TransactionSession::cancel_timed_out_request() {
  const auto limit = s_.config.pool.query_timeout_ms;
  spdlog::info("{} request on server {} exceeded query_timeout_ms ({} ms): cancelling", label(),
               lease_->label(), limit);
  co_await s_.rt.forward_cancel(s_.cancel_key);
  live_->server_failure = {
      "57014", "canceling statement due to query_timeout_ms (" + std::to_string(limit) + " ms)"};
}

awaitable<std::pair<boost::system::error_code, std::size_t>> TransactionSession::read_server() {
  auto read = [this]() { return lease_->io().read_some(); };
  const Millis limit(s_.config.pool.query_timeout_ms);
  if (limit.count() <= 0 || live_->expect.empty()) co_return co_await read();
  const auto left = std::chrono::duration_cast<Millis>(request_started_ + limit -
                                                       std::chrono::steady_clock::now());
  try {
    co_return co_await with_timeout(read(), std::max(left, Millis(1)));
  } catch (const TimeoutError&) {
  }
  co_return std::pair{boost::system::error_code(asio::error::timed_out), std::size_t{0}};
}

void ReplicaReadWatch::tick(Clock::time_point now) {
  // Due entries are taken out first: a session looked at may put its entry back.
  List due;
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it++;
    if (e.due > now) continue;
    e.unlink();
    due.push_back(e);
  }
  while (!due.empty()) {
    Entry& e = due.front();
    due.pop_front();
    e.session->check_replica_read(now);
  }
}

void TransactionSession::check_replica_read(std::chrono::steady_clock::time_point now) {
  // Answered, handed back or already given up on: nothing to watch.
  if (!watching_replica() || !server_loop_running_ || replica_unanswered_) return;
  if (s_.routing->answering(state_.lease_target)) {
    s_.worker.replica_reads.watch(replica_watch_, now + s_.replica_read_timeout);  // only slow
    return;
  }
  if (state_.server_write_cut) {
    // The request is half sent (a frozen replica takes a small one whole): the write's own
    // end decides; looked at again meanwhile.
    s_.worker.replica_reads.watch(replica_watch_, now + s_.replica_read_timeout);
    return;
  }
  replica_unanswered_ = true;
  // The pending receive ends with operation_aborted; after_server_read gives up on it.
  boost::system::error_code ignored;
  lease_->io().socket().cancel(ignored);
}

void TransactionSession::cancel_abandoned_request() {
  // The connection is about to be discarded, so its backend serves no one else: the cancel
  // needs no lease check, and is sent in the background so that a frozen server cannot hold
  // the client (or its clean-up) up.
  asio::co_spawn(
      s_.worker.io,
      s_.rt.cancel_abandoned_server(CancelTarget{.endpoint = lease_->login().endpoint,
                                                 .server_pid = lease_->backend_pid(),
                                                 .server_secret = lease_->backend_secret()}),
      asio::detached);
}

void TransactionSession::abandon_replica_read() {
  // (Only a monitored replica is given up on: its stale samples keep new reads away, and its
  // next sample readmits it, so no ban.)
  spdlog::warn(
      "{} replica server {} has not begun to answer a read within replica_read_timeout_ms ({} "
      "ms) and its lag samples have stopped: cancelling the read there, running it on the "
      "primary",
      label(), lease_->label(), s_.replica_read_timeout.count());
  cancel_abandoned_request();
  state_.retry_armed = false;
  state_.retry_pending = state_.retry_lost = true;
}

}  // namespace pgmux::pooler
