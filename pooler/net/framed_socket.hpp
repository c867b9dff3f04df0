// A TCP socket with a lent receive buffer and a frame reader: the login and reset phases read
// whole messages through it, and the relays read through read_some(), which waits for
// readability holding no buffer when nothing is unread. Every read commits memory only for
// bytes received; a frame's declared length is checked against the limit of the phase
// (startup packet, authentication message, regular message) before any of it is buffered.
#pragma once

#include <stdexcept>
#include <string_view>

#include "pooler/net/asio_util.hpp"
#include "pooler/net/byte_buffer.hpp"
#include "pooler/net/drained_receive.hpp"
#include "pooler/net/stream.hpp"
#include "protocol/frame_reader.hpp"

namespace pgmux::pooler {

// Raised when a peer breaks the protocol or closes during a phase that needs whole messages.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class FramedSocket {
 public:
  // Bytes asked of the socket per read: one standard block.
  static constexpr std::size_t kReadChunk = 16 * 1024;
  // Before login a read asks only for what the frame still needs (or a header's worth), so a
  // client that stops half-way holds a few hundred bytes, not a block.
  static constexpr std::size_t kLoginRead = 256;

  FramedSocket(Socket socket, std::size_t max_message_size);

  // Reads one whole frame whose body is at most `max_body` bytes (default: the regular
  // message limit); the view stays valid until the next read. Throws on EOF, I/O errors
  // (boost::system::system_error) and bad or oversized frames (ProtocolError).
  awaitable<protocol::Frame> read_tagged(std::size_t max_body = 0);
  // A startup-phase packet (StartupMessage, SSLRequest, CancelRequest): at most PostgreSQL's
  // 10,000 bytes.
  awaitable<protocol::Frame> read_untagged();
  awaitable<void> write(std::string_view bytes);
  // Drops the frame the last read returned, so the buffer holds only unread bytes.
  void release_frame() {
    in_.consume(pending_consume_);
    pending_consume_ = 0;
  }
  // Reads what the peer sends next into the buffer. With nothing unread, it first waits for
  // the socket to be readable without holding a buffer, then borrows one.
  awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      std::size_t want = kReadChunk);
  // Reads, without waiting, what a socket known to be readable holds (a parked connection
  // woken by its wait); would_block when the wake-up was spurious.
  std::pair<boost::system::error_code, std::size_t> read_ready(std::size_t want = kReadChunk);
  // Takes in bytes that a wait received into a small area of the caller's (a parked client
  // waits with a landing of a few hundred bytes rather than a block: client_parking.cpp).
  // A landing not filled means the socket held no more, so the next read_ready() says so
  // without asking the socket.
  void take_landed(std::string_view bytes, bool filled) {
    in_.reserve_tail(kReadChunk);
    in_.append(bytes);
    drained_ = !filled;
  }
  // Gives the buffer back if nothing is unread (a connection going idle).
  void release_buffer() {
    release_frame();
    in_.release_if_drained();
  }
  // Drops unread input with the buffer (a connection closing after a fatal error).
  void discard_input() {
    pending_consume_ = 0;
    in_.discard();
  }
  // After the socket moved to another io_context: borrow from that worker's pool.
  void rebind_pool();
  // async_receive_drained() on this socket (net/drained_receive.hpp), into `buffer`.
  template <class Handler>
  void receive_drained(asio::mutable_buffer buffer, Handler&& handler) {
    async_receive_drained(*reactor_, socket(), buffer, std::forward<Handler>(handler));
  }

  Socket& socket() { return stream_.socket(); }
  Stream& stream() { return stream_; }
  ByteBuffer& buffer() { return in_; }
  [[nodiscard]] std::size_t max_message_size() const { return max_message_size_; }

 private:
  awaitable<protocol::Frame> read_frame(const protocol::FrameReader& reader, bool untagged);

  Stream stream_;
  ByteBuffer in_;
  std::size_t max_message_size_;
  std::size_t pending_consume_ = 0;  // size of the frame handed out by the previous read
  bool drained_ = false;             // take_landed() emptied the socket: see there
  Reactor* reactor_ = nullptr;       // the event loop's, kept by rebind_pool()
};

}  // namespace pgmux::pooler
