// Whole-message reads over a TCP socket, used outside the relay's hot path.
#include "pooler/framed_socket.hpp"

namespace pgmux::pooler {

awaitable<protocol::Frame> FramedSocket::read(bool untagged) {
  release_frame();
  for (;;) {
    const auto r =
        untagged ? reader_.parse_untagged(in_.unread()) : reader_.parse_tagged(in_.unread());
    if (r.status == protocol::FrameStatus::complete) {
      pending_consume_ = r.frame.wire_size;
      co_return r.frame;
    }
    if (r.status == protocol::FrameStatus::error) throw ProtocolError(protocol::describe(r.error));
    in_.reserve_tail(
        std::max<std::size_t>(r.needed > in_.size() ? r.needed - in_.size() : 0, 4096));
    const std::size_t n = co_await socket_.async_read_some(in_.tail(), use_awaitable);
    in_.end += n;
  }
}

awaitable<void> FramedSocket::write(std::string_view bytes) {
  co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()), use_awaitable);
}

}  // namespace pgmux::pooler
