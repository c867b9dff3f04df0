// Server → client, one frame at a time (the FrameScanner's inspector): recognises the answers
// to pgmux's own messages (dropped), ParameterStatus (recorded), COPY, and the ReadyForQuery
// that leaves the server quiescent (a transaction boundary, where the server may go back to
// its pool); holds back the answer to a request armed for the 25006 retry until its first
// content. Sans-I/O: the caller forwards what the scan allows and acts on the flags below.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "pooler/session/held_server.hpp"
#include "pooler/session/session_protocol.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

class ServerInspector {
 public:
  ServerInspector(SessionProtocol& state, RewriteState& live, HeldServer& server)
      : state(state), live(live), server(server) {}

  [[nodiscard]] bool needs_body(char tag) const {
    namespace be = protocol::be;
    return tag == be::kReadyForQuery || tag == be::kParameterStatus || tag == be::kErrorResponse ||
           tag == be::kParseComplete || tag == be::kCloseComplete;
  }
  bool on_frame(char tag, std::string_view body, std::size_t length);

  // Set by the caller: this scan runs while a request is armed (keep the bytes).
  bool holding = false;
  // What the scan found; the caller clears each flag when it has acted on it.
  std::size_t drop = 0;             // bytes of a frame to drop instead of forwarding
  bool boundary = false;            // a ReadyForQuery left nothing outstanding
  bool refuse_transaction = false;  // statement mode: a transaction was opened
  bool release_held = false;        // the armed request's answer has content: send the held
  bool ready_seen = false;          // a ReadyForQuery arrived (a wait for it may be over)
  bool bad = false;                 // the server is out of step: close it
  std::string why;                  // what was unexpected, for the log

  // An armed request's answer frames that carry no content yet (kept back until it is known
  // whether the replica refuses the request).
  static bool preamble(char tag);

 private:
  bool drop_frame(std::string_view body) {
    drop = protocol::kTaggedHeaderSize + body.size();
    return false;
  }
  // Applies what the expectation queue says of an answer.
  bool answered(AnswerAction action, std::string_view body);
  // The first content frame of an armed request's answer.
  bool on_armed_answer(char tag, std::string_view body);
  bool on_ready_for_query(std::string_view body);
  bool on_error(std::string_view body);

  SessionProtocol& state;
  RewriteState& live;
  HeldServer& server;
};

}  // namespace pgmux::pooler
