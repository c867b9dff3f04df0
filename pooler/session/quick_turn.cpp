// A client's turn without a coroutine (see transaction_pooling.hpp): when its request needs
// nothing but the sockets (no replica to choose, the server it holds or an idle one already in
// step with its settings, a server socket that takes the request whole), it is forwarded from
// the parked wait's completion handler and the client is parked again; the server side answers
// it from its own handler (server_pump.cpp). Whatever needs another wait hands over to run(),
// with the session as run() expects it at the top of its loop: nothing half done but a write
// (unsent_) or a failure (carried_failure_), which run() takes up first.
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"

namespace pgmux::pooler {

QuickTurn take_quick_turn(TransactionSession& session, boost::system::error_code wake) {
  return session.turn_now(wake);
}

QuickTurn TransactionSession::turn_now(boost::system::error_code wake) {
  parked_ = false;
  if (!live_) live_ = turn_states_.take(s_.worker.io.get_executor());
  if (wake) return {.wake = wake};  // a cancelled or failed wait is run()'s
  if (!take_wake(wake)) return {.wake = asio::error::eof};
  try {
    for (;;) {
      if (std::optional<QuickTurn> next = quick_step()) return *next;
    }
  } catch (...) {
    carried_failure_ = std::current_exception();
    return {};
  }
}

std::optional<QuickTurn> TransactionSession::quick_step() {
  ByteBuffer& buf = s_.client.buffer();
  const bool mid_frame = client_scanner_.mid_frame();
  const bool whole_header = mid_frame || buf.size() >= pr::kTaggedHeaderSize;
  if (buf.size() > 0 && whole_header) {
    if (live_->server_failure || state_.retry_pending) return QuickTurn{};
    if (!mid_frame && !lease_ && buf.unread()[0] == pr::fe::kTerminate) return QuickTurn{};
    if (!mid_frame && !lease_ && !server_loop_running_ && !internal_ && !s_.session_pooling &&
        may_answer_without_server(buf.unread()[0])) {
      if (const std::size_t used = answer_without_server(); used > 0) {
        std::size_t written = 0;
        boost::system::error_code ec;
        if (writing_client_ ||
            !s_.client.stream().try_write_all(asio::buffer(live_->out), written, ec)) {
          unsent_answer_ = UnsentAnswer{used, written};
          return QuickTurn{};
        }
        if (ec) throw boost::system::system_error(ec);
        buf.consume(used);
        return std::nullopt;
      }
    }
    if (!mid_frame && routing()) {
      // The cases where run() may wait before routing (see there) are left to it.
      if ((lease_ && state_.lease_target >= 0 && !live_->expect.open_batch()) || internal_ ||
          state_.boundary_pending || (server_loop_running_ && !lease_)) {
        return QuickTurn{};
      }
      if (!lease_) {
        const std::optional<FrontRoute> route = route_front();
        if (!route) return read_more_now();
        if (route->set_target || !lease_routed_now(*route)) return QuickTurn{};
      }
    }
    if ((!lease_ || internal_) && !lease_idle_now()) return queue_for_server();
    const ScannedRequest request = scan_request(buf);
    if (request.forwardable > 0) {
      std::size_t written = 0;
      if (!write_request_now(written)) {
        unsent_ = UnsentRequest{request, written};
        return QuickTurn{};
      }
      sent_request(buf, request);
      publish_phase();
    }
    if (request.terminated) return QuickTurn{.wake = asio::error::eof};
    if (request.forwardable > 0) return std::nullopt;
  }
  return read_more_now();
}

QuickTurn TransactionSession::read_more_now() {
  // Nothing (whole) to send: the client is parked again, unless a time limit applies to its
  // next bytes (run() reads them under it).
  if (client_read_limit().limit.count() > 0) return QuickTurn{};
  parked_ = true;
  lend_back_if_idle();
  return QuickTurn{.wait_for_client = true};
}

awaitable<void> TransactionSession::write_unsent_answer() {
  const UnsentAnswer unsent = *std::exchange(unsent_answer_, std::nullopt);
  co_await write_client(std::string_view(live_->out).substr(unsent.written));
  s_.client.buffer().consume(unsent.used);
}

awaitable<bool> TransactionSession::write_unsent_request() {
  const UnsentRequest unsent = *std::exchange(unsent_, std::nullopt);
  auto [ec, n] = co_await asio::async_write(
      lease_->io().stream(), buffers_after(segments_view(), unsent.written), as_result);
  if (ec) fail("08006", "server connection lost: the server closed the connection unexpectedly");
  sent_request(s_.client.buffer(), unsent.request);
  publish_phase();
  co_return unsent.request.terminated;
}

}  // namespace pgmux::pooler
