// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it: the server side that verifies
// clients against a stored secret, and the client side pgmux uses to log in to servers.
// Pure state machines over strings; OpenSSL supplies the hash, HMAC, PBKDF2 and randomness.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "protocol/base64.hpp"

namespace pgmux::protocol {

using ScramKey = std::array<std::uint8_t, 32>;

// What PostgreSQL stores in pg_authid.rolpassword for a SCRAM user:
// "SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>".
struct ScramSecret {
  int iterations = 4096;
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};
};

// The keys a client derives from its password for one salt and iteration count. A server
// login needs ClientKey and ServerKey, not the password: pgmux gets them from the password
// (PBKDF2, slow on purpose) or recovers ClientKey from a client's own proof (pass-through).
struct ScramKeys {
  std::string salt;  // raw bytes
  int iterations = 0;
  ScramKey client_key{};
  ScramKey server_key{};
};
[[nodiscard]] ScramKeys derive_scram_keys(std::string_view password, std::string_view salt,
                                          int iterations);

// A secret for a user that does not exist, so that the exchange looks like a real one and
// fails only at the proof (no user enumeration): the salt is derived from `user` and
// `instance_key` (stable for one pgmux process), the keys are random.
[[nodiscard]] ScramSecret mock_scram_secret(std::string_view user, std::string_view instance_key);

[[nodiscard]] boost::system::result<ScramSecret> parse_scram_secret(std::string_view text);
[[nodiscard]] std::string format_scram_secret(const ScramSecret& secret);
// Derives a secret from a plaintext password; an empty salt means 16 random bytes.
[[nodiscard]] ScramSecret make_scram_secret(std::string_view password, std::string_view salt = {},
                                            int iterations = 4096);

// Random printable nonce (base64 of `bytes` random bytes).
[[nodiscard]] std::string random_nonce(std::size_t bytes = 18);

// Server side of one SCRAM exchange. Errors are returned as
// boost::system::errc::protocol_error (malformed message) or
// boost::system::errc::permission_denied (wrong proof).
class ScramServer {
 public:
  // `server_nonce` empty = random; tests pass a fixed one. `channel_binding` is the
  // tls-server-end-point data of the connection (empty: no TLS, SCRAM-SHA-256-PLUS is not
  // offered).
  explicit ScramServer(ScramSecret secret, std::string server_nonce = {},
                       std::string channel_binding = {});

  // Input: the data of SASLInitialResponse (client-first-message, e.g. "n,,n=,r=abc") and
  // whether the client chose SCRAM-SHA-256-PLUS. Output: server-first-message
  // ("r=...,s=...,i=4096"). A client that claims channel binding support while the server
  // offers it ("y"), or whose GS2 header does not match the mechanism, is refused
  // (errc::protocol_error): that is how a downgrade by a man in the middle shows.
  [[nodiscard]] boost::system::result<std::string> handle_client_first(std::string_view msg,
                                                                       bool plus = false);
  // Input: client-final-message. Output: server-final-message ("v=...") when the proof holds.
  [[nodiscard]] boost::system::result<std::string> handle_client_final(std::string_view msg);
  // After a successful exchange: the ClientKey the client proved it holds.
  [[nodiscard]] const ScramKey& client_key() const { return client_key_; }
  [[nodiscard]] const ScramSecret& secret() const { return secret_; }

 private:
  ScramSecret secret_;
  std::string server_nonce_;
  std::string channel_binding_;
  ScramKey client_key_{};
  std::string gs2_header_;  // "n,," or "y,,"; client-final's c= must be its base64
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  int step_ = 0;
};

// Client side of one SCRAM exchange (pgmux logging in to a PostgreSQL server).
class ScramClient {
 public:
  // `client_nonce` empty = random; tests pass a fixed one. `user` is normally empty,
  // as PostgreSQL ignores it and libpq sends "n=".
  explicit ScramClient(std::string password, std::string client_nonce = {}, std::string user = {});

  // The data for SASLInitialResponse: "n,,n=<user>,r=<nonce>".
  [[nodiscard]] std::string client_first() const;
  // Input: server-first-message. Output: client-final-message with the proof.
  [[nodiscard]] boost::system::result<std::string> handle_server_first(std::string_view msg);
  // The same in two steps, so that the keys can be derived elsewhere (another thread, a
  // cache, a client's proof): first the salt and iteration count the server asks for...
  struct ServerFirst {
    std::string salt;
    int iterations = 0;
  };
  [[nodiscard]] boost::system::result<ServerFirst> parse_server_first(std::string_view msg);
  // ...then the client-final-message from keys for that salt and count.
  [[nodiscard]] std::string client_final(const ScramKeys& keys);
  // Checks the server signature in server-final-message ("v=..." or "e=...").
  [[nodiscard]] boost::system::result<void> verify_server_final(std::string_view msg) const;

 private:
  std::string password_;
  std::string client_nonce_;
  std::string user_;
  std::string server_first_;  // the message, kept for the AuthMessage
  std::string combined_nonce_;
  ScramKey server_signature_{};
  bool have_signature_ = false;
};

}  // namespace pgmux::protocol
