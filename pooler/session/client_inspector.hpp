// Client → server, one frame at a time (the FrameScanner's inspector): tracks what the server
// will answer, rewrites the names of the client's prepared statements into the server's (and
// prepares them there first when it lacks them), and records what each statement does to the
// session (settings, pins, DEALLOCATE/DISCARD). Sans-I/O: the caller forwards the scanned
// bytes with the edits applied (RewriteState::edits, bytes in RewriteState::scratch).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "pooler/session/held_server.hpp"
#include "pooler/session/session_protocol.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

class ClientInspector {
 public:
  // `base`: the start of the unread client bytes about to be scanned.
  ClientInspector(SessionProtocol& state, RewriteState& live, HeldServer& server, ClientLabel label,
                  const char* base)
      : state(state), live(live), server(server), label(label), base(base) {}

  [[nodiscard]] bool needs_body(char tag) const {
    namespace fe = protocol::fe;
    return tag == fe::kQuery || tag == fe::kParse || tag == fe::kBind || tag == fe::kDescribe ||
           tag == fe::kClose || tag == fe::kTerminate;
  }
  // A Bind is offered by its head when large: its parameters stream through at any size.
  // Session pooling relays a Query or Parse of any size too, as PostgreSQL takes it: it routes
  // nothing, and the effects of one too large to read whole are assumed (on_frame()).
  [[nodiscard]] bool head_only(char tag) const {
    namespace fe = protocol::fe;
    return tag == fe::kBind ||
           (state.settings.session_pooling && (tag == fe::kQuery || tag == fe::kParse));
  }
  bool on_frame(char tag, std::string_view body, std::size_t length);

  // What the scan saw.
  bool terminated = false;  // the client sent Terminate (not forwarded)
  bool violation = false;   // a malformed message: the session ends with 08P01
  // Shape of what this scan forwards, for the 25006 safety net.
  char first_tag = 0, last_tag = 0;
  int syncs = 0, queries = 0, others = 0;

  // The SQL pin_session_state = "error" sends in place of a statement it refuses.
  static std::string refusal_sql(PinReason why);

 private:
  [[nodiscard]] std::size_t frame_pos(std::string_view body) const {
    return static_cast<std::size_t>(body.data() - base) - protocol::kTaggedHeaderSize;
  }
  void begin_edit() { edit_start = live.scratch.size(); }
  // The edit replaces the frame's header and its first `replaced` body bytes (all of them by
  // default) with what was appended to scratch since begin_edit().
  void end_edit(std::string_view body, std::size_t replaced = std::string_view::npos);
  // Makes sure the held server has `def` prepared, appending what that takes to scratch.
  void ensure_prepared(const StatementDef& def, bool client_parse);
  void on_query(std::string_view body);
  // DEALLOCATE of a protocol-level statement in a Query: deallocates its server-side name.
  void deallocate_by_query(std::string_view body, std::string_view client_name);
  // Records what a statement does to the session; true when pin_session_state = "error"
  // refuses it (the caller then sends refusal_sql instead).
  bool apply_effects(const StatementEffects& fx);
  void on_parse(std::string_view body);
  // An unnamed Parse: SET, LISTEN or DEALLOCATE through the extended protocol.
  void on_unnamed_parse(std::string_view body, const protocol::Parse& parse,
                        const StatementEffects& fx);
  // `body` may be only the head of a large Bind (its names; `length` is the whole body's).
  void on_bind(std::string_view body, std::size_t length);
  // Binds the refusal in place of a statement pin_session_state = "error" refuses: same
  // portal, no parameters. A Bind too large to be held whole keeps its parameters, which the
  // refusal does not take: the server then rejects the Bind instead (08P01), which fails the
  // batch all the same.
  void refuse_bind(std::string_view body, std::size_t length, std::string_view portal,
                   std::size_t names, PinReason pin);
  void on_describe(std::string_view body);
  void on_close(std::string_view body);

  SessionProtocol& state;
  RewriteState& live;
  HeldServer& server;
  ClientLabel label;
  const char* base;
  bool first = true;  // the next frame is the first of this scan
  std::size_t edit_start = 0;
};

}  // namespace pgmux::pooler
