// TLS over a non-blocking socket: handshakes, one read or write attempt at a time, close.
#include "pooler/net/stream.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <cerrno>

namespace pgmux::pooler {

namespace {

// OpenSSL's queued errors as one line ("certificate verify failed; …"), emptying the queue.
std::string openssl_errors(std::string_view fallback) {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    std::array<char, 256> text{};
    ERR_error_string_n(e, text.data(), text.size());
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : text.data();
  }
  return out.empty() ? std::string(fallback) : out;
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Stream::~Stream() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

bool Stream::has_buffered_input() const {
  return ssl_ != nullptr && SSL_has_pending(ssl_) == 1;
}

std::string Stream::tls_description() const {
  if (ssl_ == nullptr) return {};
  return std::string(SSL_get_version(ssl_)) + "/" + SSL_get_cipher_name(ssl_);
}

std::pair<const char*, const char*> Stream::tls_names() const {
  if (ssl_ == nullptr) return {nullptr, nullptr};
  return {SSL_get_version(ssl_), SSL_get_cipher_name(ssl_)};
}

std::string Stream::alpn_protocol() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl_, &data, &size);
  return data != nullptr ? std::string(reinterpret_cast<const char*>(data), size) : std::string();
}

std::string Stream::tls_server_end_point() const {
  if (ssl_ == nullptr) return {};
  X509* cert = SSL_get_certificate(ssl_);
  if (cert == nullptr) return {};
  int md_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr) != 1) return {};
  const EVP_MD* md =
      (md_nid == NID_md5 || md_nid == NID_sha1) ? EVP_sha256() : EVP_get_digestbynid(md_nid);
  if (md == nullptr) return {};
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int size = 0;
  if (X509_digest(cert, md, hash.data(), &size) != 1) return {};
  return std::string(reinterpret_cast<const char*>(hash.data()), size);
}

std::string Stream::peer_common_name() const {
  if (ssl_ == nullptr) return {};
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr || SSL_get_verify_result(ssl_) != X509_V_OK) return {};
  std::array<char, 256> cn{};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(),
                                          static_cast<int>(cn.size()));
  return n > 0 ? std::string(cn.data(), static_cast<std::size_t>(n)) : std::string();
}

awaitable<void> Stream::tls_accept(ssl_ctx_st* ctx) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) throw TlsError(openssl_errors("cannot create a TLS session"));
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_accept_state(ssl_);
  co_await handshake(true);
}

awaitable<void> Stream::tls_connect(ssl_ctx_st* ctx, const std::string& host, bool verify_host) {
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) throw TlsError(openssl_errors("cannot create a TLS session"));
  SSL_set_fd(ssl_, socket_.native_handle());
  SSL_set_connect_state(ssl_);
  const bool ip = is_ip_address(host);
  if (!ip) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI names hosts, not addresses
  if (verify_host) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) throw TlsError("cannot check the server certificate against \"" + host + "\"");
  }
  co_await handshake(false);
}

awaitable<void> Stream::handshake(bool as_server) {
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return;
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto [ec] = co_await socket_.async_wait(
          err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write, as_result);
      if (ec) throw boost::system::system_error(ec);
      continue;
    }
    std::string why = openssl_errors(err == SSL_ERROR_SYSCALL ? "connection closed" : "failed");
    if (!as_server && SSL_get_verify_result(ssl_) != X509_V_OK) {
      why = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
    }
    throw TlsError("TLS handshake failed: " + why);
  }
}

Stream::Want Stream::tls_step(bool writing, void* data, std::size_t size, std::size_t& n,
                              boost::system::error_code& ec) {
  // SSL_get_error() needs an empty error queue; emptying an empty one costs a walk over it.
  if (ERR_peek_error() != 0) ERR_clear_error();
  const int r = writing ? SSL_write_ex(ssl_, data, size, &n) : SSL_read_ex(ssl_, data, size, &n);
  if (r == 1) return Want::nothing;
  n = 0;
  switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
      return Want::read;
    case SSL_ERROR_WANT_WRITE:
      return Want::write;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;
      return Want::nothing;
    case SSL_ERROR_SYSCALL:
      ec = errno != 0 ? boost::system::error_code(errno, boost::system::system_category())
                      : boost::system::error_code(asio::error::eof);
      ERR_clear_error();
      return Want::nothing;
    default:
      ERR_clear_error();
      ec = asio::error::connection_reset;  // a TLS protocol error ends the stream
      return Want::nothing;
  }
}

std::size_t Stream::read_some(asio::mutable_buffer b, boost::system::error_code& ec) {
  ec.clear();
  if (ssl_ == nullptr) return socket_.read_some(b, ec);
  std::size_t n = 0;
  if (tls_step(false, b.data(), b.size(), n, ec) != Want::nothing) ec = asio::error::would_block;
  return n;
}

std::size_t Stream::write_some(asio::const_buffer b, boost::system::error_code& ec) {
  ec.clear();
  if (ssl_ == nullptr) return socket_.write_some(b, ec);
  std::size_t n = 0;
  if (tls_step(true, const_cast<void*>(b.data()), b.size(), n, ec) != Want::nothing) {
    ec = asio::error::would_block;
  }
  return n;
}

void Stream::close() {
  if (!socket_.is_open()) return;
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_) == 1) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // one non-blocking attempt at close_notify; the peer's is not awaited
    ERR_clear_error();
  }
  boost::system::error_code ec;
  socket_.close(ec);
}

}  // namespace pgmux::pooler
