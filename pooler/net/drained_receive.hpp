// A receive that tells Asio's reactor when it has drained the socket.
//
// Asio 1.26 (Debian 12's Boost 1.81) starts every async_receive with a speculative recv
// unless the socket's last receive returned end of file, and every readiness wait
// (async_wait) with an epoll_ctl. A connection that gets one request per wait, as most
// pooled connections do, pays one of those syscalls per wait, finding nothing. This receive
// reports a read shorter than its buffer as having drained the socket (as the kernel's own
// TCP receive guarantees: it stops early only when the queue is empty), so the next receive
// is queued with no syscall at all and the edge-triggered event for new bytes performs it.
// Bytes that arrive after the read raise that event and re-enable the speculative read, so
// none are missed.
//
// It uses Asio's reactor directly (detail API of the pinned Boost; plain sockets on Linux's
// epoll reactor only). The handler's associated allocator allocates the operation; cancel()
// and close() end it with operation_aborted like any of the socket's operations.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <type_traits>

// (Asio's detail headers need the library's own first.)
#include "pooler/net/asio_util.hpp"

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>

namespace pgmux::pooler {

namespace drained_detail {

namespace ad = asio::detail;

// The socket's descriptor and reactor registration are protected members of basic_socket.
struct SocketImplAccess : asio::basic_socket<tcp, Executor> {
  static auto& of(Socket& socket) {
    return (socket.*(&SocketImplAccess::impl_)).get_implementation();
  }
};

template <class Handler>
class ReceiveOp final : public ad::reactor_op {
 public:
  using Alloc = typename std::allocator_traits<
      asio::associated_allocator_t<Handler>>::template rebind_alloc<ReceiveOp>;

  ReceiveOp(int fd, asio::mutable_buffer buffer, Handler handler)
      : ad::reactor_op(boost::system::error_code(), &ReceiveOp::perform, &ReceiveOp::complete),
        fd_(fd),
        buffer_(buffer),
        handler_(std::move(handler)) {}

 private:
  static status perform(ad::reactor_op* base) {
    auto* op = static_cast<ReceiveOp*>(base);
    for (;;) {
      const ssize_t n = ::recv(op->fd_, op->buffer_.data(), op->buffer_.size(), 0);
      if (n > 0) {
        op->bytes_transferred_ = static_cast<std::size_t>(n);
        return op->bytes_transferred_ < op->buffer_.size() ? done_and_exhausted : done;
      }
      if (n == 0) {
        op->ec_ = asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      op->ec_ = boost::system::error_code(errno, boost::system::system_category());
      return done;
    }
  }

  // owner is null when the event loop is destroyed with the operation pending.
  static void complete(void* owner, ad::scheduler_operation* base,
                       const boost::system::error_code& /*ec*/, std::size_t /*n*/) {
    auto* op = static_cast<ReceiveOp*>(base);
    Handler handler(std::move(op->handler_));
    const boost::system::error_code ec = op->ec_;
    const std::size_t n = op->bytes_transferred_;
    Alloc alloc(asio::get_associated_allocator(handler));
    std::allocator_traits<Alloc>::destroy(alloc, op);
    std::allocator_traits<Alloc>::deallocate(alloc, op, 1);
    if (owner != nullptr) std::move(handler)(ec, n);
  }

  int fd_;
  asio::mutable_buffer buffer_;
  Handler handler_;
};

}  // namespace drained_detail

// The reactor of a socket's event loop: looked up in the loop's service registry (a mutex and
// string compares), so callers keep it (FramedSocket does, per worker it is bound to).
using Reactor = asio::detail::reactor;
inline Reactor& reactor_of(Socket& socket) {
  return asio::use_service<Reactor>(socket.get_executor().context());
}

// Receives into `buffer` (which must stay valid until the handler runs) once the socket has
// bytes; handler(error_code, std::size_t), eof when the peer closed. The socket must be open
// and `reactor` its event loop's.
template <class Handler>
void async_receive_drained(Reactor& reactor, Socket& socket, asio::mutable_buffer buffer,
                           Handler&& handler) {
  namespace dd = drained_detail;
  using Op = dd::ReceiveOp<std::decay_t<Handler>>;
  using Traits = std::allocator_traits<typename Op::Alloc>;
  if (!socket.non_blocking()) socket.non_blocking(true);
  auto& impl = dd::SocketImplAccess::of(socket);
  typename Op::Alloc alloc(asio::get_associated_allocator(handler));
  Op* op = Traits::allocate(alloc, 1);
  try {
    Traits::construct(alloc, op, impl.socket_, buffer, std::forward<Handler>(handler));
  } catch (...) {
    Traits::deallocate(alloc, op, 1);
    throw;
  }
  reactor.start_op(Reactor::read_op, impl.socket_, impl.reactor_data_, op, false, true);
}

}  // namespace pgmux::pooler
