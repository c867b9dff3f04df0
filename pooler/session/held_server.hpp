// What the session engine needs of the server a client holds: the statements prepared there,
// its transaction status and the parameters it reports. ServerConnection is one; the engine's
// tests hold a plain one, so the protocol logic runs without a socket.
#pragma once

#include <string>
#include <string_view>

namespace pgmux::pooler {

class ServerStatements;

class HeldServer {
 public:
  virtual ServerStatements& statements() = 0;
  // Transaction status from the last ReadyForQuery: 'I', 'T' or 'E'.
  [[nodiscard]] virtual char tx_status() const = 0;
  virtual void set_tx_status(char status) = 0;
  // A ParameterStatus the server sent.
  virtual void record_parameter(std::string_view name, std::string_view value) = 0;
  // For the log: the server's id and address.
  [[nodiscard]] virtual const std::string& label() const = 0;

 protected:
  HeldServer() = default;
  HeldServer(const HeldServer&) = default;
  HeldServer& operator=(const HeldServer&) = default;
  ~HeldServer() = default;
};

}  // namespace pgmux::pooler
