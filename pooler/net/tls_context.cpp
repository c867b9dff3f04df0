// Building OpenSSL contexts from pgmux's TLS settings.
#include "pooler/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <array>

namespace pgmux::pooler {

const char* to_string(TlsMode m) {
  switch (m) {
    case TlsMode::disable:
      return "disable";
    case TlsMode::allow:
      return "allow";
    case TlsMode::prefer:
      return "prefer";
    case TlsMode::require:
      return "require";
    case TlsMode::verify_ca:
      return "verify-ca";
    case TlsMode::verify_full:
      return "verify-full";
  }
  return "?";
}

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string reason;
  if (const unsigned long e = ERR_peek_last_error(); e != 0) {
    const char* r = ERR_reason_error_string(e);
    reason = std::string(": ") + (r != nullptr ? r : "OpenSSL error");
  }
  ERR_clear_error();
  throw TlsError(what + reason);
}

int protocol_version(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  throw TlsError("unknown TLS version \"" + name + "\" (expected \"TLSv1.2\" or \"TLSv1.3\")");
}

// Settings every context shares: minimum version, no renegotiation, no compression, and an
// EOF without close_notify read as an ordinary end of stream (libpq and many drivers just
// close). Record buffers are released while a connection waits: keeping them (two 17 kB
// buffers per connection) saved about 1,400 instructions per transaction but left 1,000
// departed TLS clients' memory fragmented in the heap (RSS 4.5 MB over its baseline).
SSL_CTX* new_context(const SSL_METHOD* method, const std::string& min_version) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) fail("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx, protocol_version(min_version));
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

void load_certificate(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    fail("cannot load certificate file \"" + cert_file + "\"");
  }
  check_key_file_permissions(key_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("cannot load private key file \"" + key_file + "\"");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail("private key \"" + key_file + "\" does not match certificate \"" + cert_file + "\"");
  }
}

void load_ca(SSL_CTX* ctx, const std::string& ca_file) {
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    fail("cannot load CA file \"" + ca_file + "\"");
  }
}

// Chooses "postgresql" when the client offers it (libpq 17 always does); a client offering
// only other protocols gets no ALPN, and a direct TLS client then is refused by the session.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  static constexpr unsigned char kPostgresql[] = "\x0apostgresql";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kPostgresql, sizeof kPostgresql - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

void check_key_file_permissions(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw TlsError("cannot read private key file \"" + path + "\"");
  }
  if (!S_ISREG(st.st_mode)) throw TlsError("private key \"" + path + "\" is not a regular file");
  const bool root_owned = st.st_uid == 0;
  const mode_t forbidden = root_owned ? (S_IWGRP | S_IXGRP | S_IRWXO) : (S_IRWXG | S_IRWXO);
  if ((st.st_mode & forbidden) != 0) {
    throw TlsError("private key file \"" + path +
                   "\" has group or world access; it must be u=rw (0600) or less, or u=rw,g=r "
                   "(0640) or less if owned by root");
  }
}

std::shared_ptr<const TlsContext> TlsContext::for_clients(const ClientTlsSettings& s) {
  if (s.cert_file.empty() || s.key_file.empty()) {
    throw TlsError("client_tls_mode \"" + std::string(to_string(s.mode)) +
                   "\" needs client_tls_cert_file and client_tls_key_file");
  }
  std::shared_ptr<TlsContext> out(new TlsContext(new_context(TLS_server_method(), s.min_version)));
  SSL_CTX* ctx = out->ctx_;
  if (SSL_CTX_set_cipher_list(ctx, s.ciphers.c_str()) != 1) {
    fail("client_tls_ciphers \"" + s.ciphers + "\" selects no cipher");
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn,
                             nullptr);  // no session tickets: nothing resumes a pgmux session
  load_certificate(ctx, s.cert_file, s.key_file);
  const bool ask_certificate = s.mode == TlsMode::verify_ca || s.mode == TlsMode::verify_full;
  if (ask_certificate && s.ca_file.empty()) {
    throw TlsError("client_tls_mode \"" + std::string(to_string(s.mode)) +
                   "\" needs client_tls_ca_file");
  }
  if (!s.ca_file.empty()) {
    load_ca(ctx, s.ca_file);
    // Clients with a certificate from this CA may use it (auth = "cert"); verify-* demand one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx, ask_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
        nullptr);
  }
  static constexpr unsigned char kSessionContext[] = "pgmux";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  return out;
}

std::shared_ptr<const TlsContext> TlsContext::for_servers(const ServerTlsSettings& s) {
  std::shared_ptr<TlsContext> out(new TlsContext(new_context(TLS_client_method(), s.min_version)));
  SSL_CTX* ctx = out->ctx_;
  if (!s.cert_file.empty() || !s.key_file.empty()) {
    if (s.cert_file.empty() || s.key_file.empty()) {
      throw TlsError("server_tls_cert_file and server_tls_key_file go together");
    }
    load_certificate(ctx, s.cert_file, s.key_file);
  }
  const bool verify = s.mode == TlsMode::verify_ca || s.mode == TlsMode::verify_full;
  if (verify) {
    // As libpq, which has no "system" roots before PostgreSQL 16: the CA must be named.
    if (s.ca_file.empty()) {
      throw TlsError("server_tls_mode \"" + std::string(to_string(s.mode)) +
                     "\" needs server_tls_ca_file (the provider's CA bundle)");
    }
    load_ca(ctx, s.ca_file);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return out;
}

}  // namespace pgmux::pooler
