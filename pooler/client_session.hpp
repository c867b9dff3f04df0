// One client connection from accept to close: startup negotiation, authentication, leasing a
// server, relaying, and handing the server back clean. One coroutine per client, on one worker.
#pragma once

#include "pooler/asio_util.hpp"

namespace pgmux::pooler {

class Runtime;
struct Worker;

// Runs the session; never throws (failures are reported to the client and logged once).
awaitable<void> run_client_session(Runtime& runtime, Worker& worker, tcp::socket socket);

// A failure the client is told about as an ErrorResponse with this SQLSTATE, then closed.
class SessionError : public std::runtime_error {
 public:
  SessionError(std::string sqlstate, const std::string& message)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  [[nodiscard]] const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

}  // namespace pgmux::pooler
