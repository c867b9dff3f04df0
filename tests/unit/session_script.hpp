// Byte scripts for the session engine's unit tests: client messages and server answers built
// by hand, a server as the engine sees it, and one client's session driven through the two
// inspectors the way TransactionSession's loops feed them.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>

#include "pooler/session/client_inspector.hpp"
#include "pooler/session/server_inspector.hpp"
#include "protocol/frame_scanner.hpp"
#include "wire.hpp"

namespace pgmux::test {

using namespace pgmux::pooler;

inline std::string be16(std::uint16_t v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v)};
}

// Client messages, built by hand.
inline std::string parse(std::string_view name, std::string_view sql) {
  return frame('P', cstr(name) + cstr(sql) + be16(0));
}
inline std::string bind_frame(std::string_view statement) {
  return frame('B', cstr("") + cstr(statement) + be16(0) + be16(0) + be16(0));
}
inline std::string execute() {
  return frame('E', cstr("") + be32(0));
}
inline std::string sync_frame() {
  return frame('S', "");
}
inline std::string query(std::string_view sql) {
  return frame('Q', cstr(sql));
}
inline std::string close_statement(std::string_view name) {
  return frame('C', "S" + cstr(name));
}

// Server answers.
inline std::string ready(char status) {
  return frame('Z', std::string(1, status));
}
inline std::string parse_complete() {
  return frame('1', "");
}
inline std::string bind_complete() {
  return frame('2', "");
}
inline std::string close_complete() {
  return frame('3', "");
}
inline std::string data_row(std::string_view value) {
  return frame('D', be16(1) + be32(static_cast<std::uint32_t>(value.size())) + std::string(value));
}
inline std::string command_complete(std::string_view tag) {
  return frame('C', cstr(tag));
}
inline std::string error(std::string_view sqlstate) {
  return frame('E', "SERROR" + std::string(1, '\0') + "C" + cstr(sqlstate) + "Mfailed" +
                        std::string(2, '\0'));
}
inline std::string parameter_status(std::string_view name, std::string_view value) {
  return frame('S', cstr(name) + cstr(value));
}

// A server as the engine sees it: its prepared statements, status and reported parameters.
class ScriptServer final : public HeldServer {
 public:
  ServerStatements& statements() override { return statements_; }
  [[nodiscard]] char tx_status() const override { return status_; }
  void set_tx_status(char status) override { status_ = status; }
  void record_parameter(std::string_view name, std::string_view value) override {
    reported[std::string(name)] = std::string(value);
  }
  [[nodiscard]] const std::string& label() const override { return label_; }

  ParameterMap reported;

 private:
  ServerStatements statements_;
  char status_ = 'I';
  std::string label_ = "S-script";
};

// One client's session on one server, driven the way TransactionSession drives it.
struct Script {
  SessionProtocol state;
  RewriteState live;
  ScriptServer server;
  ReportedParameters told_client;
  pgmux::protocol::FrameScanner client_scanner, server_scanner;
  std::string client_unread, server_unread;
  std::string to_server, to_client;
  int boundaries = 0;
  bool refused_transaction = false;
  bool bad = false;

  Script() { state.told_client = &told_client; }

  // The client's bytes arrive: everything forwardable goes to the server, edits applied.
  void client_sends(std::string_view bytes) {
    client_unread += bytes;
    for (;;) {
      live.edits.clear();
      live.scratch.clear();
      ClientInspector inspector(state, live, server, ClientLabel{nullptr}, client_unread.data());
      const auto r = client_scanner.scan(client_unread, inspector);
      REQUIRE_FALSE(inspector.violation);
      REQUIRE(r.error == pgmux::protocol::FrameError::none);
      if (r.forwardable == 0) return;
      std::size_t at = 0;
      for (const RewriteState::Edit& e : live.edits) {
        to_server.append(client_unread, at, e.pos - at);
        to_server.append(live.scratch, e.scratch_at, e.scratch_len);
        at = e.pos + e.len;
      }
      to_server.append(client_unread, at, r.forwardable - at);
      client_unread.erase(0, r.forwardable);
    }
  }

  // The server's bytes arrive: forwarded, dropped or acted on as the server loop does.
  void server_sends(std::string_view bytes) {
    server_unread += bytes;
    ServerInspector inspector(state, live, server);
    while (!server_unread.empty()) {
      const auto r = server_scanner.scan(server_unread, inspector);
      REQUIRE(r.error == pgmux::protocol::FrameError::none);
      if (inspector.bad) {
        bad = true;
        return;
      }
      to_client.append(server_unread, 0, r.forwardable);
      server_unread.erase(0, r.forwardable);
      if (inspector.drop > 0) {
        server_unread.erase(0, inspector.drop);
        inspector.drop = 0;
        refused_transaction = refused_transaction || inspector.refuse_transaction;
        if (!inspector.boundary) continue;
      }
      if (inspector.boundary) {
        inspector.boundary = false;
        ++boundaries;
        continue;
      }
      if (r.forwardable == 0) return;  // waits for the rest of a frame
    }
  }
};

// Runs `client` then `server` through a fresh session on `prepared` (a script that already
// served earlier requests), each cut in two at `client_cut` and `server_cut`.
inline void run_cut(Script& s, std::string_view client, std::size_t client_cut,
                    std::string_view server, std::size_t server_cut) {
  s.client_sends(client.substr(0, client_cut));
  s.client_sends(client.substr(client_cut));
  s.server_sends(server.substr(0, server_cut));
  s.server_sends(server.substr(server_cut));
}

// The server-side name pgmux gives a statement: read from the session after its Parse.
inline std::string server_name_of(const Script& s, std::string_view client_name) {
  const StatementDef* def = s.state.find_statement(client_name);
  REQUIRE(def != nullptr);
  return def->server_name;
}

}  // namespace pgmux::test
