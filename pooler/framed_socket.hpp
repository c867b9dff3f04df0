// A TCP socket with a receive buffer and a frame reader: the login and reset phases read whole
// messages through it, and the relay reuses its buffer so bytes a client pipelined behind its
// startup packet are not lost.
#pragma once

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pooler/asio_util.hpp"
#include "protocol/frame_reader.hpp"

namespace pgmux::pooler {

// Receive buffer: bytes [start, end) are unread; grows only up to what one frame needs.
struct ByteBuffer {
  std::vector<char> data = std::vector<char>(16 * 1024);
  std::size_t start = 0;
  std::size_t end = 0;

  [[nodiscard]] std::string_view unread() const { return {data.data() + start, end - start}; }
  [[nodiscard]] std::size_t size() const { return end - start; }
  void consume(std::size_t n) {
    start += n;
    if (start == end) start = end = 0;
  }
  // Makes room for at least `n` more bytes after `end`, moving unread bytes to the front.
  void reserve_tail(std::size_t n) {
    if (start > 0 && data.size() - end < n) {
      std::memmove(data.data(), data.data() + start, end - start);
      end -= start;
      start = 0;
    }
    if (data.size() - end < n) data.resize(end + n);
  }
  [[nodiscard]] asio::mutable_buffer tail() {
    return asio::buffer(data.data() + end, data.size() - end);
  }
};

// Raised when a peer breaks the protocol or closes during a phase that needs whole messages.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class FramedSocket {
 public:
  FramedSocket(tcp::socket socket, std::size_t max_message_size)
      : socket_(std::move(socket)), reader_(max_message_size) {}

  // Reads one whole frame; the view stays valid until the next read. Throws on EOF, I/O
  // errors (boost::system::system_error) and bad frames (ProtocolError).
  awaitable<protocol::Frame> read_tagged() { return read(false); }
  awaitable<protocol::Frame> read_untagged() { return read(true); }
  awaitable<void> write(std::string_view bytes);
  // Drops the frame the last read returned, so the buffer holds only unread bytes.
  void release_frame() {
    in_.consume(pending_consume_);
    pending_consume_ = 0;
  }

  tcp::socket& socket() { return socket_; }
  ByteBuffer& buffer() { return in_; }
  [[nodiscard]] std::size_t max_message_size() const { return reader_.max_message_size(); }

 private:
  awaitable<protocol::Frame> read(bool untagged);

  tcp::socket socket_;
  ByteBuffer in_;
  protocol::FrameReader reader_;
  std::size_t pending_consume_ = 0;  // size of the frame handed out by the previous read
};

}  // namespace pgmux::pooler
