// The session engine's server loop (see transaction_session.hpp): forwards the server's
// answers as the server inspector allows and ends each transaction (transaction_end.cpp);
// also the settings sync at a lease and the clean-up when the client leaves.
#include <array>

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/server_inspector.hpp"
#include "pooler/session/transaction_session.hpp"
#include "protocol/message_writer.hpp"
#include "router/database_routing.hpp"

namespace pgmux::pooler {

awaitable<void> TransactionSession::sync_settings() {
  ParameterMap& applied = lease_->applied_settings();
  // Exact equality (names compared with case) is the common case and cheap; anything else
  // goes through the case-insensitive comparison.
  const std::string sql =
      applied == state_.wanted ? std::string() : build_settings_sync(state_.wanted, applied);
  if (!sql.empty()) {
    std::optional<ServerError> refused;
    try {
      co_await lease_->simple_query(sql);
    } catch (const ServerError& e) {
      refused = e;
    }
    lease_->io().release_frame();
    if (refused) {
      // The server refused a setting the client asked for (at startup, or one it had SET):
      // the session cannot continue as the client expects, as PostgreSQL would refuse the
      // login. The server itself is fine after a reset.
      co_await lease_->reset(s_.config.pool.server_reset_query);
      lease_->io().release_frame();
      lease_.give_back();
      fail(refused->sqlstate(), refused->what());
    }
    applied = state_.wanted;
  }
  if (!client_told_in_step()) co_await tell_client_parameters(false);
}

bool TransactionSession::client_told_in_step() {
  // The client was told its pool's welcome parameters plus its own differences: when this
  // server differs from the same welcome in exactly those, there is nothing to tell.
  const auto& base = s_.told_client.base();
  return base && lease_->parameters_differing_from(base) == s_.told_client.own();
}

awaitable<void> TransactionSession::tell_client_parameters(bool before_held_rfq) {
  // Reported values that differ from what the client was told (ParameterStatus may arrive
  // at any time).
  if (client_told_in_step()) co_return;
  if (!before_held_rfq) live_->out.clear();
  for (const auto& [name, value] : lease_->parameters()) {
    // The client sees one server: whether this one is a standby is pgmux's business.
    if (name == "in_hot_standby") continue;
    const std::string* told = s_.told_client.find(name);
    if (told == nullptr || *told != value) {
      pr::append_parameter_status(live_->out, name, value);
      s_.told_client.set(name, value);
    }
  }
  if (!before_held_rfq && !live_->out.empty()) co_await write_client(live_->out);
}

awaitable<void> TransactionSession::restore_startup_settings() {
  ParameterMap& applied = lease_->applied_settings();
  const std::string sql = build_settings_sync(state_.wanted, applied);
  if (sql.empty()) co_return;
  co_await lease_->simple_query(sql);  // a refusal fails the server: it accepted these before
  lease_->io().release_frame();
  applied = state_.wanted;
  // The RESET's ParameterStatus told the client the server's default; the startup value
  // follows it (before a held ReadyForQuery, if any).
  co_await tell_client_parameters(state_.rfq_held);
}

awaitable<void> TransactionSession::server_loop([[maybe_unused]] std::shared_ptr<void> owner,
                                                ServerStep first) {
  // When the loop is done with the server and the client is parked, the active state goes
  // back (declared first: it runs after the locals below are gone).
  struct LendBack {
    TransactionSession& t;
    ~LendBack() { t.lend_back_if_idle(); }
  } lend_back{*this};
  for (ServerStep step = first;; step = advance_server()) {
    switch (step) {
      case ServerStep::go_on:
        continue;  // (advance_server never returns it)
      case ServerStep::done:
        co_return;
      case ServerStep::stop:
        server_side_ended();
        co_return;
      case ServerStep::read: {
        // Without a deadline the read is awaited directly: no wrapper frame per read.
        auto [ec, n] = s_.config.pool.query_timeout_ms > 0 && !live_->expect.empty()
                           ? co_await read_server()
                           : co_await lease_->io().read_some();
        if (ec == asio::error::timed_out) co_await cancel_timed_out_request();
        if (after_server_read(ec) == ServerStep::stop) {
          server_side_ended();
          co_return;
        }
        break;
      }
      case ServerStep::wait_writer:
        while (writing_client_) co_await wait(live_->server_gate);
        break;  // on at forward
      case ServerStep::write: {
        const std::array<asio::const_buffer, 2> out{
            asio::buffer(live_->held),
            asio::buffer(lease_->io().buffer().unread().data(), server_scan_.forwardable)};
        const auto rest = buffers_after(out, forward_written_);
        auto [ec, n] = co_await write_forward(rest);
        forwarded();
        if (ec) {  // the client is gone; its loop will notice and clean up
          server_side_ended();
          co_return;
        }
        break;
      }
      case ServerStep::refuse:
        if (!co_await refuse_transaction()) {
          server_side_ended();
          co_return;
        }
        if (quiescent() && lease_->tx_status() == 'I' && co_await finish_transaction()) co_return;
        server_stage_ = server_inspector_->boundary ? ServerStage::verdict : ServerStage::scan;
        break;
      case ServerStep::finish:
        if (co_await finish_transaction()) co_return;
        break;  // kept the server: on at after_boundary
    }
  }
}

TransactionSession::ServerStep TransactionSession::after_server_read(boost::system::error_code ec) {
  if (std::exchange(replica_unanswered_, false) && ec == asio::error::operation_aborted) {
    abandon_replica_read();  // check_replica_read gave up on a frozen or cut-off replica
    return ServerStep::stop;
  }
  if (ec == asio::error::operation_aborted && (client_done_ || rearm_server_read_)) {
    rearm_server_read_ = false;
    return ServerStep::go_on;  // scan: with nothing to scan, stop or read again
  }
  if (ec == asio::error::timed_out) return ServerStep::stop;  // the request was cancelled
  if (ec) {
    server_lost(ec);
    return ServerStep::stop;
  }
  return ServerStep::go_on;
}

void TransactionSession::server_out_of_step(std::string_view why) {
  spdlog::warn("{} server {} sent an unexpected or invalid message: {}", label(), lease_->label(),
               why.empty() ? "bad frame" : why);
  live_->server_failure = {"08P01", "protocol violation: unexpected message from server"};
  if (state_.lease_target >= 0) s_.routing->ban(state_.lease_target, "protocol violation");
}

void TransactionSession::server_lost(boost::system::error_code ec) {
  if (state_.server_closing || (quiescent() && !internal_ && lease_->tx_status() == 'I' &&
                                !keeps_server() && !state_.retry_armed && !state_.retry_pending)) {
    server_closed_quietly(ec);
    return;
  }
  spdlog::warn("{} lost its server {}: {}", label(), lease_->label(), ec.message());
  if (state_.lease_target >= 0) {
    s_.routing->ban(state_.lease_target, "connection lost: " + ec.message());
    if (state_.retry_armed || state_.retry_pending) {
      // A read the replica never answered (no byte of it reached the client): run it again.
      state_.retry_armed = false;
      state_.retry_pending = state_.retry_lost = true;
      return;
    }
  }
  live_->server_failure = {"08006",
                           "server connection lost: the server closed the connection "
                           "unexpectedly"};
}

void TransactionSession::server_closed_quietly(boost::system::error_code ec) {
  spdlog::info("{} server {} closed between transactions ({}): discarded, the client goes on",
               label(), lease_->label(), ec.message());
  if (state_.lease_target >= 0) {
    s_.routing->ban(state_.lease_target, "connection lost: " + ec.message());
  }
  if (s_.info != nullptr) s_.info->state.store(ClientState::idle);
  state_.server_closing = state_.boundary_pending = false;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  lease_.discard();
  lease_ = ServerLease();
  live_->expect.clear();
  publish_phase();
}

awaitable<bool> TransactionSession::refuse_transaction() {
  internal_ = true;
  publish_phase();
  try {
    co_await lease_->simple_query("ROLLBACK");
    lease_->io().release_frame();
  } catch (const std::exception& e) {
    spdlog::warn("{} server {}: ROLLBACK failed ({})", label(), lease_->label(), e.what());
    live_->server_failure = {"08006", "pgmux could not roll back a refused transaction"};
  }
  internal_ = false;
  publish_phase();
  live_->client_gate.cancel();
  if (live_->server_failure) co_return false;
  live_->out.clear();
  pr::append_error(live_->out, {.severity = "ERROR",
                                .sqlstate = "0A000",
                                .message = "pgmux: transaction blocks are not allowed in statement "
                                           "pooling mode; the transaction was rolled back",
                                .hint = "use mode = \"transaction\" for this client"});
  pr::append_ready_for_query(live_->out, 'I');
  co_await write_client(live_->out);
  co_return true;
}

awaitable<std::pair<boost::system::error_code, std::size_t>> TransactionSession::write_forward(
    const std::vector<asio::const_buffer>& buffers) {
  const Millis limit(s_.config.pool.client_write_timeout_ms);
  if (limit.count() <= 0) {
    auto [ec, n] = co_await asio::async_write(s_.client.stream(), buffers, as_result);
    co_return std::pair{ec, n};
  }
  try {
    auto [ec, n] = co_await with_timeout(
        asio::async_write(s_.client.stream(), buffers, as_result_awaitable), limit);
    co_return std::pair{ec, n};
  } catch (const TimeoutError&) {
  }
  spdlog::warn(
      "{} stopped reading: the answer from server {} waited client_write_timeout_ms ({} ms) "
      "for room in its socket; closing the client, cancelling the request",
      label(), lease_->label(), limit.count());
  // The client loop sees the connection end and cleans up (cleanup_after_client): the server,
  // mid-request, gets a CancelRequest and is closed.
  boost::system::error_code ignored;
  s_.client.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return std::pair{boost::system::error_code(asio::error::timed_out), std::size_t{0}};
}

awaitable<void> TransactionSession::cleanup_after_client() {
  client_done_ = true;
  if (server_loop_running_ && lease_) {
    boost::system::error_code ignored;
    lease_->io().socket().cancel(ignored);
    while (server_loop_running_) co_await wait(live_->client_gate);
  }
  if (!lease_) co_return;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  if (live_->server_failure || !quiescent()) {
    if (!live_->server_failure) {
      // Closing the connection alone would leave the backend running the request until it
      // next writes (a long query could run for hours for nobody): it is cancelled first.
      spdlog::info("{} left with server {} busy: cancelling its request, closing the server",
                   label(), lease_->label());
      cancel_abandoned_request();
    }
    lease_.discard();
    co_return;
  }
  try {
    // A transaction left open is rolled back; session-only state (a session-pooled or pinned
    // client's) goes with a full reset.
    if (lease_->tx_status() != 'I') co_await lease_->simple_query("ROLLBACK");
    if (keeps_server()) co_await lease_->reset(s_.config.pool.server_reset_query);
    lease_->io().release_frame();
    if (lease_->tx_status() != 'I') throw ServerError("08P01", "server not idle after ROLLBACK");
    lease_.give_back();
  } catch (const std::exception& e) {
    spdlog::warn("{} cleanup of server {} failed ({}): closing it", label(), lease_->label(),
                 e.what());
    lease_.discard();
  }
}

}  // namespace pgmux::pooler
