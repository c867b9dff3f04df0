// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it: the server side that verifies
// clients against a stored secret, and the client side pgmux uses to log in to servers.
// Pure state machines over strings; OpenSSL supplies the hash, HMAC, PBKDF2 and randomness.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

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

[[nodiscard]] boost::system::result<ScramSecret> parse_scram_secret(std::string_view text);
[[nodiscard]] std::string format_scram_secret(const ScramSecret& secret);
// Derives a secret from a plaintext password; an empty salt means 16 random bytes.
[[nodiscard]] ScramSecret make_scram_secret(std::string_view password, std::string_view salt = {},
                                            int iterations = 4096);

[[nodiscard]] std::string base64_encode(std::string_view raw);
[[nodiscard]] boost::system::result<std::string> base64_decode(std::string_view text);
// Random printable nonce (base64 of `bytes` random bytes).
[[nodiscard]] std::string random_nonce(std::size_t bytes = 18);

// Server side of one SCRAM exchange. Errors are returned as
// boost::system::errc::protocol_error (malformed message) or
// boost::system::errc::permission_denied (wrong proof).
class ScramServer {
 public:
  // `server_nonce` empty = random; tests pass a fixed one.
  explicit ScramServer(ScramSecret secret, std::string server_nonce = {});

  // Input: the data of SASLInitialResponse (client-first-message, e.g. "n,,n=,r=abc").
  // Output: server-first-message ("r=...,s=...,i=4096").
  [[nodiscard]] boost::system::result<std::string> handle_client_first(std::string_view msg);
  // Input: client-final-message. Output: server-final-message ("v=...") when the proof holds.
  [[nodiscard]] boost::system::result<std::string> handle_client_final(std::string_view msg);

 private:
  ScramSecret secret_;
  std::string server_nonce_;
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
  // Checks the server signature in server-final-message ("v=..." or "e=...").
  [[nodiscard]] boost::system::result<void> verify_server_final(std::string_view msg) const;

 private:
  std::string password_;
  std::string client_nonce_;
  std::string user_;
  ScramKey server_signature_{};
  bool have_signature_ = false;
};

}  // namespace pgmux::protocol
