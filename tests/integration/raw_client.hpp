// A bare TCP client speaking hand-built protocol bytes, for what libpq cannot do: malformed
// packets, CancelRequests with chosen keys, and reading SQLSTATEs of errors sent at login.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmux::it {

class RawClient {
 public:
  enum class Status { data, closed, timeout, error };
  struct Message {
    char tag = 0;
    std::string body;
  };

  explicit RawClient(std::uint16_t port);  // connects to 127.0.0.1:port; throws on failure
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends everything; false when the peer is gone.
  bool send(std::string_view bytes);
  // Appends whatever arrives within `bound` (data), or reports closed/timeout/error.
  Status read_some(std::string& out, std::chrono::milliseconds bound);
  // Reads one backend message (tag, int32 length, body) within `bound`.
  Status read_message(Message& m, std::chrono::milliseconds bound);
  // Reads until the peer closes, at most `bound`; returns closed, timeout or error.
  Status read_until_closed(std::string& out, std::chrono::milliseconds bound);

 private:
  int fd_ = -1;
  std::string pending_;
};

// Protocol 3.0 StartupMessage with the given parameters.
[[nodiscard]] std::string startup_packet(
    const std::vector<std::pair<std::string, std::string>>& params);
// CancelRequest (code 80877102) for the given key.
[[nodiscard]] std::string cancel_request_packet(std::int32_t pid, std::int32_t secret);
// Big-endian int32.
[[nodiscard]] std::string be32(std::uint32_t v);
// What a raw login attempt ended with.
struct RawLogin {
  bool ready = false;        // ReadyForQuery arrived: logged in
  std::string sqlstate;      // of the ErrorResponse, if one arrived
  std::string message;       // its message, or what went wrong otherwise
  bool asked_scram = false;  // the server wants SASL, which this client does not speak
  bool query_done = false;   // the query's ReadyForQuery arrived without an error
};

// Logs in with a raw client that answers cleartext and md5 password requests; stops at the
// first ErrorResponse, ReadyForQuery, SASL request, close or after `bound`. With a `query`,
// it is sent after the login's ReadyForQuery and the call stops at the first ErrorResponse or
// at the query's ReadyForQuery instead.
[[nodiscard]] RawLogin raw_login(std::uint16_t port, const std::string& user,
                                 const std::string& database, const std::string& password,
                                 std::chrono::milliseconds bound = std::chrono::milliseconds(10000),
                                 const std::string& query = "");

// Field `code` ('C' = SQLSTATE, 'M' = message, …) of an ErrorResponse/NoticeResponse body.
[[nodiscard]] std::string error_field(std::string_view body, char code);

}  // namespace pgmux::it
