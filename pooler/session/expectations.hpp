// What a server will answer to what was sent to it, for the messages whose answers pgmux must
// recognise (ParseComplete, CloseComplete, ErrorResponse, ReadyForQuery), including PostgreSQL's
// rule that after an error in an extended-protocol message the server discards every message
// up to the next Sync — also those the client has not sent yet. Sans-I/O: it is told what was
// forwarded and what came back, and answers what to do with each answer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgmux::pooler {

struct Expect {
  enum Kind : std::uint8_t { parse, close, sync, query } kind;
  bool swallow = false;        // pgmux's own message: the client never sees the answer
  bool swallow_error = false;  // …nor an error it causes
  std::string statement;       // parse: the server-side name being prepared
};

[[nodiscard]] const char* to_string(Expect::Kind kind);

// What to do with one answer from the server.
enum class AnswerAction : std::uint8_t {
  forward,     // the client's own answer
  drop,        // the answer to pgmux's own message
  unexpected,  // not what the server should have sent: the connection is out of step
};

class Expectations {
 public:
  // A frame of the client's forwarded as it came (Query, Parse, Bind, Sync, …). Returns false
  // when the server will discard it (skipping to Sync after an error): the caller must then
  // forward it untouched and record no effect of it, as PostgreSQL records none.
  bool client_frame(char tag);
  // A message pgmux adds, or an entry for a client message it rewrote.
  void push(Expect e) { queue_.push_back(std::move(e)); }
  void pop_back() {
    queue_.pop_back();
    if (queue_.size() == head_) reset();
  }

  // Answers. `why` says what was unexpected (for the log).
  AnswerAction parse_complete(std::string& why);
  AnswerAction close_complete(std::string& why);
  // ReadyForQuery: the Sync or Query it ends is popped into `ended`.
  AnswerAction ready_for_query(Expect& ended, std::string& why);
  // ErrorResponse. An error in an extended message makes the server skip to the next Sync:
  // the entries up to it are dropped, and the server-side statements whose Parse it skipped
  // are appended to `unprepared`. Returns forward or drop (pgmux's own message failed).
  AnswerAction error(std::vector<std::string>& unprepared);

  [[nodiscard]] bool empty() const { return head_ == queue_.size(); }
  // The server is discarding messages until the client's next Sync.
  [[nodiscard]] bool skipping() const { return skipping_; }
  // Extended-protocol messages were sent since the last Sync.
  [[nodiscard]] bool open_batch() const { return open_batch_; }
  // A Sync or Query is still unanswered (a request is in flight).
  [[nodiscard]] bool request_pending() const;
  [[nodiscard]] const Expect& front() const { return queue_[head_]; }
  void clear() {
    reset();
    skipping_ = open_batch_ = false;
  }

 private:
  AnswerAction pop(Expect::Kind kind, Expect* out, std::string& why);
  Expect& head() { return queue_[head_]; }
  void pop_front() {
    if (++head_ == queue_.size()) {
      reset();
    } else if (head_ >= 64 && head_ * 2 >= queue_.size()) {
      // A pipeline that never drains: drop the answered entries so the queue stays bounded.
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void reset() {
    queue_.clear();  // keeps its capacity: no allocation per transaction
    head_ = 0;
  }

  // Answers still to come, in order, from head_ on. A vector, not a deque: nothing is
  // allocated for a client that never sends an extended batch (a deque allocates at once).
  std::vector<Expect> queue_;
  std::size_t head_ = 0;
  bool skipping_ = false;
  bool open_batch_ = false;
};

}  // namespace pgmux::pooler
