// Whole-message reads over a TCP socket, and the buffer-lending read the relays use.
#include "pooler/net/framed_socket.hpp"

#include <utility>

#include "pooler/net/buffer_pool.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

FramedSocket::FramedSocket(Socket socket, std::size_t max_message_size)
    : stream_(std::move(socket)), max_message_size_(max_message_size) {
  rebind_pool();
}

void FramedSocket::rebind_pool() {
  // read_some() reads synchronously once the socket is readable, and TLS reads and writes
  // are attempted before waiting: never block the worker.
  boost::system::error_code ec;
  if (socket().is_open()) socket().non_blocking(true, ec);
  in_.set_pool(&BufferPool::of(socket().get_executor()));
  reactor_ = &reactor_of(socket());
}

awaitable<pr::Frame> FramedSocket::read_tagged(std::size_t max_body) {
  const pr::FrameReader reader(max_body == 0 ? max_message_size_ : max_body);
  co_return co_await read_frame(reader, false);
}

awaitable<pr::Frame> FramedSocket::read_untagged() {
  const pr::FrameReader reader(pr::kMaxStartupPacketBody);
  co_return co_await read_frame(reader, true);
}

awaitable<pr::Frame> FramedSocket::read_frame(const pr::FrameReader& reader, bool untagged) {
  release_frame();
  for (;;) {
    const auto r =
        untagged ? reader.parse_untagged(in_.unread()) : reader.parse_tagged(in_.unread());
    if (r.status == pr::FrameStatus::complete) {
      pending_consume_ = r.frame.wire_size;
      co_return r.frame;
    }
    if (r.status == pr::FrameStatus::error) {
      throw ProtocolError(untagged ? "invalid length of startup packet" : pr::describe(r.error));
    }
    std::size_t want = kReadChunk;
    if (reader.max_message_size() <= pr::kMaxStartupPacketBody) {
      want = r.needed > in_.size() ? r.needed - in_.size() : kLoginRead;
    }
    auto [ec, n] = co_await read_some(want);
    if (ec) throw boost::system::system_error(ec);
  }
}

awaitable<std::pair<boost::system::error_code, std::size_t>> FramedSocket::read_some(
    std::size_t want) {
  boost::system::error_code ec;
  drained_ = false;
  if (in_.size() == 0) {
    // Nothing unread: wait holding no buffer, so an idle connection costs none. (A queued
    // wait re-arms the descriptor in Asio's reactor, so bytes that arrived before it are
    // reported too: test_framed_socket.cpp.)
    in_.release_if_drained();
    for (;;) {
      if (!stream_.has_buffered_input()) {
        auto [wait_ec] = co_await socket().async_wait(tcp::socket::wait_read, as_result);
        if (wait_ec) co_return std::pair{wait_ec, std::size_t{0}};
      }
      auto [read_ec, n] = read_ready(want);
      if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) continue;
      co_return std::pair{read_ec, n};
    }
  }
  in_.reserve_tail(want);
  auto [read_ec, n] = co_await stream_.async_read_some(in_.tail(), as_result);
  if (!read_ec) in_.commit(n);
  co_return std::pair{read_ec, n};
}

std::pair<boost::system::error_code, std::size_t> FramedSocket::read_ready(std::size_t want) {
  boost::system::error_code ec;
  if (std::exchange(drained_, false)) return {ec, 0};
  in_.reserve_tail(want);
  const std::size_t n = stream_.read_some(in_.tail(), ec);
  if (!ec) in_.commit(n);
  in_.release_if_drained();  // a spurious wake-up or an error: hold no buffer
  return {ec, n};
}

awaitable<void> FramedSocket::write(std::string_view bytes) {
  co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()), use_awaitable);
}

}  // namespace pgmux::pooler
