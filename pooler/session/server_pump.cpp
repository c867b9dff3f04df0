// The server side of the session engine (see transaction_session.hpp), as steps that need no
// waiting: scan what the server sent with the server inspector, forward what it allows, drop
// what was pgmux's own, and end the transaction at a quiescent ReadyForQuery. A step that must
// wait (for the server's next bytes, a client socket that took only part of a forward,
// pgmux's own queries) says so, and the stage it stopped at is kept: a plain completion
// handler on the receive of the server's bytes drives the steps while every wait is the
// socket's own, which is the whole life of most transactions, and hands over to the
// server_loop coroutine (server_loop.cpp) at the first other wait.
#include <array>

#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"

namespace pgmux::pooler {

void TransactionSession::start_server_side() {
  server_loop_running_ = true;
  server_stage_ = ServerStage::scan;
  server_scanner_ = pr::FrameScanner(s_.client.max_message_size());
  server_inspector_.emplace(state_, *live_, *lease_);
  // The handler reads without a deadline and waits on the socket alone: a request under
  // query_timeout_ms and bytes already buffered go to the coroutine.
  const bool plain = lease_->io().buffer().size() == 0 && s_.config.pool.query_timeout_ms <= 0 &&
                     !lease_->io().stream().has_buffered_input();
  if (!plain) {
    asio::co_spawn(s_.worker.io, server_loop(s_.owner.lock(), ServerStep::go_on),
                   [](std::exception_ptr e) { Runtime::log_exception("server loop", e); });
    return;
  }
  await_server_bytes(s_.owner.lock());
}

void TransactionSession::await_server_bytes(std::shared_ptr<void> owner) {
  FramedSocket& io = lease_->io();
  if (io.stream().is_tls()) {
    io.release_buffer();  // a TLS server waiting for its answer holds no buffer
    io.socket().async_wait(tcp::socket::wait_read,
                           [this, owner = std::move(owner)](boost::system::error_code e) {
                             on_server_readable(owner, e, false);
                           });
    return;
  }
  // The reactor receives the answer straight into the buffer: a readiness wait would cost
  // Asio an epoll_ctl per wait, and a read after it the recv this one makes
  // (net/drained_receive.hpp: no syscall to start it either).
  io.buffer().reserve_tail(FramedSocket::kReadChunk);
  io.receive_drained(io.buffer().tail(),
                     asio::bind_allocator(SlabAllocator<void>(s_.worker.slabs),
                                          [this, &io, owner = std::move(owner)](
                                              boost::system::error_code e, std::size_t n) {
                                            if (!e) io.buffer().commit(n);
                                            on_server_readable(owner, e, true);
                                          }));
}

void TransactionSession::on_server_readable(const std::shared_ptr<void>& owner,
                                            boost::system::error_code ec, bool received) {
  try {
    serve_server_readiness(owner, ec, received);
  } catch (...) {
    // A completion handler must not throw into the worker's run loop: the session ends as
    // the coroutine's failure would end it.
    Runtime::log_exception("server side", std::current_exception());
    if (!live_->server_failure) live_->server_failure = {"XX000", "pgmux: internal error"};
    server_side_ended();
  }
}

void TransactionSession::serve_server_readiness(const std::shared_ptr<void>& owner,
                                                boost::system::error_code ec, bool received) {
  ServerStep step = ServerStep::read;
  bool coroutine_reads = false;
  for (bool again = true; again; received = false) {
    if (!ec && !received) ec = lease_->io().read_ready().first;
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      // A spurious wake-up: wait again. Over TLS it may also be a record's first part, or
      // OpenSSL wanting to write first: the coroutine's read knows which to wait for.
      coroutine_reads = lease_->io().stream().is_tls();
      break;
    }
    step = after_server_read(ec);
    if (step == ServerStep::go_on) step = advance_server();
    // What OpenSSL has decrypted already, a readiness wait would not report. (Only while
    // the lease holds: a server handed back may be closed already.)
    again = step == ServerStep::read && lease_->io().stream().has_buffered_input();
    ec.clear();
  }
  if (step == ServerStep::read && !coroutine_reads) {
    await_server_bytes(owner);
  } else if (step == ServerStep::done) {
    lend_back_if_idle();
  } else if (step == ServerStep::stop) {
    server_side_ended();
    lend_back_if_idle();
  } else {
    asio::co_spawn(s_.worker.io, server_loop(owner, step),
                   [](std::exception_ptr e) { Runtime::log_exception("server loop", e); });
  }
}

void TransactionSession::server_side_ended() {
  // Failure or client gone: the client loop decides the server's fate.
  server_loop_running_ = false;
  if (live_->server_failure) {
    boost::system::error_code ignored;
    s_.client.socket().cancel(ignored);  // wake the client loop
  }
  if (state_.retry_lost) rearm_client_read(true);  // the client loop re-runs the read
  live_->client_gate.cancel();
}

TransactionSession::ServerStep TransactionSession::advance_server() {
  for (;;) {
    ServerStep step = ServerStep::stop;
    switch (server_stage_) {
      case ServerStage::scan:
        step = scan_server_bytes();
        break;
      case ServerStage::forward:
        step = forward_now();
        break;
      case ServerStage::after_forward:
        step = after_forward();
        break;
      case ServerStage::verdict:
        step = verdict();
        break;
      case ServerStage::read:
        return read_next();  // a frame's rest, or the next answer
      case ServerStage::after_boundary:
        if (state_.boundary_pending) {
          state_.boundary_pending = false;  // kept the server after all
          live_->client_gate.cancel();
        }
        server_stage_ = ServerStage::scan;
        continue;
    }
    if (step != ServerStep::go_on) return step;
  }
}

TransactionSession::ServerStep TransactionSession::read_next() {
  server_stage_ = ServerStage::scan;  // what the read brings
  if (client_done_) return ServerStep::stop;
  publish_phase();
  return ServerStep::read;
}

TransactionSession::ServerStep TransactionSession::scan_server_bytes() {
  ByteBuffer& buf = lease_->io().buffer();
  if (buf.size() == 0) return read_next();
  ServerInspector& inspector = *server_inspector_;
  inspector.holding = state_.retry_armed;
  server_scan_ = server_scanner_.scan(buf.unread(), inspector);
  if (inspector.ready_seen) {
    inspector.ready_seen = false;
    live_->client_gate.cancel();  // a wait of the client loop's may be over
  }
  const std::size_t forwardable = server_scan_.forwardable;
  server_stage_ = ServerStage::after_forward;
  if (forwardable > 0 && inspector.holding) {
    // An armed request's preamble: kept until its fate is known, dropped on a retry.
    if (!state_.retry_pending) live_->held.append(buf.unread().data(), forwardable);
    buf.consume(forwardable);
  } else if (forwardable > 0) {
    forward_written_ = 0;
    server_stage_ = ServerStage::forward;
  }
  return ServerStep::go_on;
}

TransactionSession::ServerStep TransactionSession::forward_now() {
  if (writing_client_) return ServerStep::wait_writer;  // the client loop's write first
  writing_client_ = true;
  // A released preamble goes out in the same write as what follows it.
  const std::array<asio::const_buffer, 2> out{
      asio::buffer(live_->held),
      asio::buffer(lease_->io().buffer().unread().data(), server_scan_.forwardable)};
  boost::system::error_code ec;
  if (!s_.client.stream().try_write_all(out, forward_written_, ec)) {
    return ServerStep::write;  // writing_client_ stays set: the rest follows before any other
  }
  forwarded();
  return ec ? ServerStep::stop : ServerStep::go_on;  // a client gone: its loop cleans up
}

void TransactionSession::forwarded() {
  writing_client_ = false;
  live_->server_gate.cancel();
  state_.meter.sent(live_->held.size() + server_scan_.forwardable);
  live_->held.clear();
  lease_->io().buffer().consume(server_scan_.forwardable);
  server_stage_ = ServerStage::after_forward;
}

TransactionSession::ServerStep TransactionSession::after_forward() {
  ServerInspector& inspector = *server_inspector_;
  if (state_.retry_pending) live_->held.clear();
  server_stage_ = ServerStage::scan;
  if (inspector.release_held) {
    inspector.release_held = false;
    return ServerStep::go_on;  // the releasing frame is scanned again, after live_->held
  }
  if (inspector.drop > 0) {
    lease_->io().buffer().consume(inspector.drop);
    inspector.drop = 0;
    if (inspector.refuse_transaction) {
      inspector.refuse_transaction = false;
      return ServerStep::refuse;  // then on at verdict or scan, as below
    }
    if (!inspector.boundary) return ServerStep::go_on;
  }
  server_stage_ = ServerStage::verdict;
  return ServerStep::go_on;
}

TransactionSession::ServerStep TransactionSession::verdict() {
  ServerInspector& inspector = *server_inspector_;
  if (inspector.bad || server_scan_.error != pr::FrameError::none) {
    server_out_of_step(inspector.why);
    return ServerStep::stop;
  }
  if (server_scan_.forwardable > 0 && quiescent() && lease_->tx_status() != 'I') {
    rearm_client_read(s_.config.pool.idle_transaction_timeout_ms > 0);
  }
  server_stage_ = ServerStage::read;
  if (inspector.boundary) {
    inspector.boundary = false;
    server_stage_ = ServerStage::after_boundary;
    if (std::exchange(state_.primary_refused_write, false) && s_.routing) {
      s_.routing->recheck_primary();  // roles = "auto": was the primary demoted?
    }
    if (!client_done_ && quiescent() && lease_->tx_status() == 'I') {
      // Nothing of pgmux's own to run on the server (the common case): no coroutine.
      if (session_reads_due()) return ServerStep::finish;
      if (settle_transaction()) return ServerStep::done;
    }
  }
  return ServerStep::go_on;
}

}  // namespace pgmux::pooler
