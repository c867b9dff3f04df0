// TLS settings as configured, and the OpenSSL contexts built from them: one for accepting
// clients, one per distinct server-side setting for connecting to PostgreSQL. A context is
// immutable once built and shared by every connection made with it; a RELOAD builds new ones
// (new certificate files) while connected sessions keep theirs.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

struct ssl_ctx_st;

namespace pgmux::pooler {

// A TLS setting that cannot be used, a failed handshake or a TLS-level error; what() says why.
class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// libpq's sslmode values; for clients of pgmux, verify-ca and verify-full ask the client for
// a certificate signed by client_tls_ca_file (verify-full: its CN must be the user name).
enum class TlsMode : std::uint8_t { disable, allow, prefer, require, verify_ca, verify_full };
[[nodiscard]] const char* to_string(TlsMode m);

// [pgmux] client_tls_*: pgmux as a TLS server.
struct ClientTlsSettings {
  TlsMode mode = TlsMode::disable;
  std::string cert_file, key_file, ca_file;
  std::string min_version = "TLSv1.2";             // "TLSv1.2" or "TLSv1.3"
  std::string ciphers = "HIGH:!aNULL:!MD5:!3DES";  // TLS 1.2 cipher list (OpenSSL syntax)
};

// [pgmux] server_tls_* (and [databases.X] overrides): pgmux as a TLS client of PostgreSQL.
struct ServerTlsSettings {
  TlsMode mode = TlsMode::prefer;
  std::string ca_file;              // verify-ca / verify-full: trusted roots
  std::string cert_file, key_file;  // optional: pgmux's own certificate
  std::string min_version = "TLSv1.2";
  bool operator==(const ServerTlsSettings&) const = default;
};

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Throw TlsError naming the file or setting at fault.
  static std::shared_ptr<const TlsContext> for_clients(const ClientTlsSettings& s);
  static std::shared_ptr<const TlsContext> for_servers(const ServerTlsSettings& s);

  [[nodiscard]] ssl_ctx_st* get() const { return ctx_; }

 private:
  explicit TlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

// Throws TlsError unless the private key file is readable and private: not group- or
// world-accessible, except group-readable when owned by root (PostgreSQL's rule).
void check_key_file_permissions(const std::string& path);

}  // namespace pgmux::pooler
