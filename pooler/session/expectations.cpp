// The expectation queue of one server connection: what it will answer, in order.
#include "pooler/session/expectations.hpp"

#include <algorithm>

#include "protocol/messages.hpp"

namespace pgmux::pooler {

namespace fe = protocol::fe;

const char* to_string(Expect::Kind kind) {
  switch (kind) {
    case Expect::parse:
      return "ParseComplete";
    case Expect::close:
      return "CloseComplete";
    case Expect::sync:
      return "ReadyForQuery (Sync)";
    case Expect::query:
      return "ReadyForQuery (Query)";
  }
  return "?";
}

bool Expectations::client_frame(char tag) {
  if (skipping_) {
    // PostgreSQL reads and discards every message until Sync, and answers that Sync.
    if (tag != fe::kSync) return false;
    skipping_ = false;
  }
  switch (tag) {
    case fe::kQuery:
    case fe::kFunctionCall:
      queue_.push_back({Expect::query});
      break;
    case fe::kSync:
      queue_.push_back({Expect::sync});
      open_batch_ = false;
      break;
    case fe::kParse:
      queue_.push_back({Expect::parse});
      open_batch_ = true;
      break;
    case fe::kClose:
      queue_.push_back({Expect::close});
      open_batch_ = true;
      break;
    case fe::kBind:
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kFlush:
      open_batch_ = true;  // their answers pass through unrecognised
      break;
    default:
      break;  // COPY data and anything else
  }
  return true;
}

AnswerAction Expectations::pop(Expect::Kind kind, Expect* out, std::string& why) {
  if (empty() || head().kind != kind) {
    why = std::string(to_string(kind)) + " while expecting " +
          (empty() ? "nothing" : to_string(head().kind));
    return AnswerAction::unexpected;
  }
  const bool swallow = head().swallow;
  if (out != nullptr) *out = std::move(head());
  pop_front();
  return swallow ? AnswerAction::drop : AnswerAction::forward;
}

AnswerAction Expectations::parse_complete(std::string& why) {
  return pop(Expect::parse, nullptr, why);
}

AnswerAction Expectations::close_complete(std::string& why) {
  return pop(Expect::close, nullptr, why);
}

AnswerAction Expectations::ready_for_query(Expect& ended, std::string& why) {
  if (!empty() && head().kind == Expect::query) return pop(Expect::query, &ended, why);
  return pop(Expect::sync, &ended, why);
}

AnswerAction Expectations::error(std::vector<std::string>& unprepared) {
  // An error of a simple Query ends with its own ReadyForQuery, and so does one raised by a
  // Sync itself (a failed implicit commit). With nothing queued, the error belongs to an
  // extended message whose answer pgmux does not track (Bind, Execute…) if a batch is open;
  // otherwise nothing asked for it (a FATAL on shutdown).
  if (empty()) {
    skipping_ = open_batch_;
    return AnswerAction::forward;
  }
  if (head().kind == Expect::query) return AnswerAction::forward;
  if (head().kind == Expect::sync) {
    return head().swallow_error ? AnswerAction::drop : AnswerAction::forward;
  }
  const bool swallow = head().swallow_error;
  while (!empty() && head().kind != Expect::sync) {
    if (head().kind == Expect::parse && !head().statement.empty()) {
      unprepared.push_back(std::move(head().statement));
    }
    pop_front();
  }
  // No Sync sent yet: what the client sends until its Sync is discarded by the server.
  if (empty()) skipping_ = true;
  return swallow ? AnswerAction::drop : AnswerAction::forward;
}

bool Expectations::request_pending() const {
  return std::any_of(
      queue_.begin() + static_cast<std::ptrdiff_t>(head_), queue_.end(),
      [](const Expect& e) { return e.kind == Expect::sync || e.kind == Expect::query; });
}

}  // namespace pgmux::pooler
