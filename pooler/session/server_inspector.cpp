// The server side of the session engine: see server_inspector.hpp.
#include "pooler/session/server_inspector.hpp"

#include <vector>

#include "pooler/session/prepared_statements.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

bool ServerInspector::answered(AnswerAction action, std::string_view body) {
  switch (action) {
    case AnswerAction::unexpected:
      bad = true;
      return false;
    case AnswerAction::drop:
      return drop_frame(body);
    case AnswerAction::forward:
      break;
  }
  return true;
}

bool ServerInspector::preamble(char tag) {
  switch (tag) {
    case pr::be::kParseComplete:
    case pr::be::kBindComplete:
    case pr::be::kParameterDescription:
    case pr::be::kRowDescription:
    case pr::be::kNoData:
    case pr::be::kCloseComplete:
      return true;
    default:
      return false;
  }
}

bool ServerInspector::on_frame(char tag, std::string_view body, std::size_t) {
  if (boundary) return false;  // forward up to the ReadyForQuery, then stop
  if (state.retry_armed && !preamble(tag)) return on_armed_answer(tag, body);
  switch (tag) {
    case pr::be::kParseComplete:
      return answered(live.expect.parse_complete(why), body);
    case pr::be::kCloseComplete:
      return answered(live.expect.close_complete(why), body);
    case pr::be::kErrorResponse:
      return on_error(body);
    case pr::be::kReadyForQuery:
      return on_ready_for_query(body);
    case pr::be::kParameterStatus:
      if (auto p = pr::decode_parameter_status(body)) {
        server.record_parameter(p->name, p->value);
        if (state.told_client != nullptr) state.told_client->set(p->name, p->value);
      }
      break;
    case pr::be::kCopyInResponse:
    case pr::be::kCopyBothResponse:
      state.in_copy = true;
      break;
    default:
      break;
  }
  return true;
}

bool ServerInspector::on_armed_answer(char tag, std::string_view body) {
  state.retry_armed = false;
  if (tag == pr::be::kErrorResponse) {
    auto fields = pr::decode_error_fields(body);
    // 57P01-57P03: the replica is shutting down, crashed or not accepting connections; its
    // connection ends after this error.
    const bool going_away = fields && (fields->sqlstate == "57P01" || fields->sqlstate == "57P02" ||
                                       fields->sqlstate == "57P03");
    if (fields && (fields->sqlstate == "25006" || going_away)) {
      state.retry_pending = true;
      state.retry_lost = going_away;
      on_error(body);  // the usual bookkeeping (skip to Sync); the client never sees it
      return drop_frame(body);
    }
  }
  release_held = true;
  return false;  // the caller sends the preamble first; this frame comes again
}

bool ServerInspector::on_ready_for_query(std::string_view body) {
  auto status = pr::decode_ready_for_query(body);
  if (!status) {
    bad = true;
    why = "malformed ReadyForQuery";
    return false;
  }
  Expect ended{Expect::sync};
  if (live.expect.ready_for_query(ended, why) == AnswerAction::unexpected) {
    bad = true;
    return false;
  }
  server.set_tx_status(*status);
  state.in_copy = false;
  ready_seen = true;
  if (state.retry_pending) {
    // The refused request's ReadyForQuery: the client hears the primary's answer instead.
    if (state.quiescent(live)) {
      boundary = true;
      state.boundary_pending = *status == 'I';
    }
    return drop_frame(body);
  }
  if (ended.swallow) return drop_frame(body);
  if (state.settings.statement_mode && *status != 'I') {
    refuse_transaction = true;  // the caller rolls back and tells the client
    return drop_frame(body);
  }
  state.meter.ready_for_query(*status, state.quiescent(live));
  if (!state.quiescent(live)) return true;
  boundary = true;
  state.boundary_pending = *status == 'I';
  if (*status == 'I' && state.wants_write_position()) {
    // Nobody, this client or another of its user, may see the commit before pgmux knows its
    // WAL position: the ReadyForQuery goes out after it was read.
    state.rfq_held = true;
    return drop_frame(body);
  }
  return true;
}

bool ServerInspector::on_error(std::string_view body) {
  if (live.expect.empty() && !live.expect.open_batch() && server.tx_status() == 'I' &&
      !state.settings.session_pooling && state.pin == PinReason::none) {
    // Nothing asked for it and no transaction is open: the server is ending its session
    // (shutdown, crash, termination) between the client's transactions. The client is not
    // told; its next transaction gets another server.
    state.server_closing = true;
    return drop_frame(body);
  }
  std::string_view sqlstate;
  if (auto fields = pr::decode_error_fields(body)) {
    sqlstate = fields->sqlstate;
    if (sqlstate == "25006" && state.lease_target < 0) state.primary_refused_write = true;
    if (fields->sqlstate == "0A000" &&
        fields->message.find("cached plan must not change result type") != std::string_view::npos &&
        !live.last_bound.empty()) {
      // The statement's result type changed under it: prepare it afresh on next use.
      server.statements().erase(live.last_bound);
    }
  }
  // An extended-protocol error makes the server skip to the next Sync; the statements whose
  // Parse it skipped are not prepared there.
  std::vector<std::string> unprepared;
  const AnswerAction action = live.expect.error(unprepared);
  for (const std::string& name : unprepared) server.statements().erase(name);
  if (action == AnswerAction::drop) return drop_frame(body);
  if (!state.retry_pending) state.meter.error(sqlstate);
  return true;
}

}  // namespace pgmux::pooler
