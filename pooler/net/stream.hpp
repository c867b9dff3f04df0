// A connection's byte stream: plain TCP, or TLS (OpenSSL) over the same socket. Sessions,
// pools and relays hold a Stream and do not care which; Asio's composed operations
// (async_write) accept it like a socket.
//
// TLS talks to the socket's descriptor directly (non-blocking, OpenSSL's socket BIO) and waits
// for readiness through Asio, rather than through asio::ssl::stream's pair of 17 kB memory
// buffers: an idle TLS connection then holds only OpenSSL's state (its record buffers are
// released while idle), the descriptor can move between workers' io_contexts as a plain one
// does, and a parked connection waits for readability like a plain one (after asking
// has_buffered_input()).
#pragma once

#include <cstddef>
#include <string>

#include "pooler/net/asio_util.hpp"
#include "pooler/net/tls_context.hpp"

struct ssl_st;

namespace pgmux::pooler {

class Stream {
 public:
  using executor_type = Socket::executor_type;

  explicit Stream(Socket socket) : socket_(std::move(socket)) {}
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  // The TCP socket underneath: waits, cancel, endpoints, the hand-over between workers.
  Socket& socket() { return socket_; }
  [[nodiscard]] bool is_tls() const { return ssl_ != nullptr; }
  // TLS input already taken off the socket (decrypted, or part of a record): a wait for the
  // socket to be readable would not report it.
  [[nodiscard]] bool has_buffered_input() const;
  // The TLS version and cipher ("TLSv1.3/TLS_AES_256_GCM_SHA384"); empty for plain TCP.
  [[nodiscard]] std::string tls_description() const;
  // The same as OpenSSL's static strings (valid for the process's lifetime, so another
  // thread may read them later): {version, cipher}, or nulls for plain TCP.
  [[nodiscard]] std::pair<const char*, const char*> tls_names() const;
  // The ALPN protocol the handshake agreed on; empty if none.
  [[nodiscard]] std::string alpn_protocol() const;
  // Channel binding data "tls-server-end-point" (RFC 5929) for SCRAM-SHA-256-PLUS: the hash
  // of the certificate this side presented, with its signature's hash (SHA-256 for MD5 and
  // SHA-1). Empty without TLS or a certificate.
  [[nodiscard]] std::string tls_server_end_point() const;
  // The common name of the peer's verified certificate; empty if none.
  [[nodiscard]] std::string peer_common_name() const;

  // TLS handshakes; the socket must be non-blocking. Throw TlsError (or system_error for I/O).
  // As a server (a client of pgmux asked for TLS):
  awaitable<void> tls_accept(ssl_ctx_st* ctx);
  // As a client (pgmux to PostgreSQL): `host` is sent as SNI and, with `verify_host`, must
  // match the server certificate.
  awaitable<void> tls_connect(ssl_ctx_st* ctx, const std::string& host, bool verify_host);

  // Non-blocking: would_block when nothing can be done now.
  std::size_t read_some(asio::mutable_buffer b, boost::system::error_code& ec);
  std::size_t write_some(asio::const_buffer b, boost::system::error_code& ec);

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (ssl_ == nullptr) {
            socket_.async_read_some(b, std::move(handler));
            return;
          }
          const asio::mutable_buffer first = first_non_empty<asio::mutable_buffer>(b);
          start_tls_op(false, first.data(), first.size(), std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (ssl_ == nullptr) {
            socket_.async_write_some(b, std::move(handler));
            return;
          }
          const asio::const_buffer first = first_non_empty<asio::const_buffer>(b);
          start_tls_op(true, const_cast<void*>(first.data()), first.size(), std::move(handler));
        },
        token, buffers);
  }

  // Writes what the socket takes at once: the usual request or answer of a few kB then costs
  // one sendmsg (plain TCP: one gather write; TLS: one SSL_write per buffer), not an Asio
  // operation completed through the scheduler. True when there is nothing left to do (all
  // written, or a failure in ec); false when the rest, after `written` bytes, needs
  // async_write (the socket's buffer was full, or TLS wants to read first). A TLS write that
  // must be retried is retried by async_write with the same bytes, as OpenSSL asks.
  template <class ConstBuffers>
  bool try_write_all(const ConstBuffers& buffers, std::size_t& written,
                     boost::system::error_code& ec) {
    written = 0;
    ec.clear();
    if (ssl_ != nullptr) return tls_write_all(buffers, written, ec);
    written = socket_.write_some(buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec.clear();
      return false;
    }
    return ec || written == asio::buffer_size(buffers);
  }

  // TLS: sends close_notify (best effort, non-blocking). Then closes the socket.
  void close();

 private:
  enum class Want : unsigned char { nothing, read, write };
  // One SSL_read/SSL_write attempt: `nothing` when done (n bytes, or an error in ec).
  Want tls_step(bool writing, void* data, std::size_t size, std::size_t& n,
                boost::system::error_code& ec);
  awaitable<void> handshake(bool as_server);
  template <class ConstBuffers>
  bool tls_write_all(const ConstBuffers& buffers, std::size_t& written,
                     boost::system::error_code& ec) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      std::size_t n = 0;
      if (tls_step(true, const_cast<void*>(b.data()), b.size(), n, ec) != Want::nothing) {
        return false;
      }
      written += n;
      if (ec) return true;
      if (n < b.size()) return false;  // a partial write: the rest waits for the socket
    }
    return true;
  }

  template <class Buffer, class Buffers>
  static Buffer first_non_empty(const Buffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      if (Buffer b(*it); b.size() > 0) return b;
    }
    return Buffer();
  }

  // Retries one TLS read or write as the socket becomes ready. A result reached without any
  // wait is delivered through the executor, never inside the initiating call.
  struct TlsOp {
    Stream* stream;
    bool writing;
    void* data;
    std::size_t size;
    bool waited = false;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (ec) {
        self.complete(ec, 0);
        return;
      }
      std::size_t n = 0;
      const Want want = stream->tls_step(writing, data, size, n, ec);
      if (want == Want::nothing) {
        if (waited) {
          self.complete(ec, n);
        } else {
          auto executor = stream->socket_.get_executor();
          asio::post(executor, asio::append(std::move(self), ec, n));
        }
        return;
      }
      waited = true;
      stream->socket_.async_wait(
          want == Want::read ? tcp::socket::wait_read : tcp::socket::wait_write, std::move(self));
    }
    template <class Self>
    void operator()(Self& self, boost::system::error_code ec, std::size_t n) {
      self.complete(ec, n);
    }
  };

  template <class Handler>
  void start_tls_op(bool writing, void* data, std::size_t size, Handler&& handler) {
    asio::async_compose<Handler, void(boost::system::error_code, std::size_t)>(
        TlsOp{this, writing, data, size}, handler, socket_);
  }

  Socket socket_;
  ssl_st* ssl_ = nullptr;
};

}  // namespace pgmux::pooler
