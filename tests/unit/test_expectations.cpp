// The expectation queue against a model of PostgreSQL's extended-protocol rules, at every split
// point: the client's batch is sent in two parts, and any number of the server's answers to
// the first part arrive before the second part is sent. Whatever the timing, pgmux must expect
// exactly what the server sends, give the client all of it (but the answers to its own
// messages), and end quiescent.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pooler/session/expectations.hpp"

using namespace pgmux::pooler;

namespace {

// One message on the wire to the server. `fails`: its execution raises an error. `pgmux`:
// inserted by pgmux before the client message that follows it (a statement it prepares).
struct Sent {
  char tag;
  bool fails = false;
  bool pgmux = false;
};

// The tags PostgreSQL answers a message with, given whether it is discarding until Sync.
struct ServerModel {
  bool skipping = false;
  std::vector<std::pair<char, bool>> answers;  // (tag, answers a pgmux message)

  void receive(const Sent& m) {
    if (skipping && m.tag != 'S') return;  // discarded until Sync
    if (m.fails) {
      answers.emplace_back('E', m.pgmux);
      if (m.tag == 'Q') {
        answers.emplace_back('Z', false);
      } else {
        skipping = true;
      }
      return;
    }
    switch (m.tag) {
      case 'P':
        answers.emplace_back('1', m.pgmux);
        break;
      case 'C':
        answers.emplace_back('3', m.pgmux);
        break;
      case 'B':
        answers.emplace_back('2', false);
        break;
      case 'E':
        answers.emplace_back('C', false);
        break;
      case 'S':
        skipping = false;
        answers.emplace_back('Z', false);
        break;
      case 'Q':
        answers.emplace_back('C', false);
        answers.emplace_back('Z', false);
        break;
      default:
        break;  // Flush: nothing
    }
  }
};

// Feeds one server answer to the queue as the session's server inspector does.
AnswerAction answer(Expectations& x, char tag) {
  std::string why;
  std::vector<std::string> unprepared;
  Expect ended{Expect::sync};
  switch (tag) {
    case '1':
      return x.parse_complete(why);
    case '3':
      return x.close_complete(why);
    case 'E':
      return x.error(unprepared);
    case 'Z':
      return x.ready_for_query(ended, why);
    default:
      return AnswerAction::forward;  // passes through unrecognised
  }
}

// Sends `batch[from, to)` as the session would: pgmux's own messages only while the server is
// not discarding (the session inserts none then), the client's through client_frame().
void send(Expectations& x, ServerModel& server, const std::vector<Sent>& batch, std::size_t from,
          std::size_t to) {
  for (std::size_t i = from; i < to; ++i) {
    const Sent& m = batch[i];
    if (m.pgmux) {
      if (x.skipping()) continue;
      x.push({m.tag == 'P' ? Expect::parse : Expect::close, true, false, "pgmux_s1"});
    } else {
      x.client_frame(m.tag);
    }
    server.receive(m);
  }
}

// Runs the batch split at `split`, delivering `early` answers before the rest is sent; returns
// a failure description or "".
std::string run(const std::vector<Sent>& batch, std::size_t split, std::size_t early) {
  Expectations x;
  ServerModel server;
  std::size_t delivered = 0;
  std::size_t forwarded = 0, expected_forwarded = 0;
  auto deliver = [&](std::size_t upto) -> std::string {
    for (; delivered < upto && delivered < server.answers.size(); ++delivered) {
      const auto [tag, to_pgmux] = server.answers[delivered];
      const AnswerAction a = answer(x, tag);
      if (a == AnswerAction::unexpected) {
        return std::string("unexpected answer '") + tag + "' at " + std::to_string(delivered);
      }
      if ((a == AnswerAction::drop) != to_pgmux) {
        return std::string("answer '") + tag + "' " + (to_pgmux ? "forwarded" : "dropped");
      }
      if (a == AnswerAction::forward) ++forwarded;
      if (!to_pgmux) ++expected_forwarded;
    }
    return "";
  };
  send(x, server, batch, 0, split);
  if (auto f = deliver(early); !f.empty()) return f;
  send(x, server, batch, split, batch.size());
  if (auto f = deliver(server.answers.size()); !f.empty()) return f;
  if (forwarded != expected_forwarded) return "answers lost";
  if (!x.empty() || x.open_batch() || x.skipping()) return "not quiescent at the end";
  return "";
}

void check_every_split(const std::vector<Sent>& batch) {
  for (std::size_t split = 0; split <= batch.size(); ++split) {
    // How many answers the first part can have produced.
    ServerModel first;
    for (std::size_t i = 0; i < split; ++i) first.receive(batch[i]);
    for (std::size_t early = 0; early <= first.answers.size(); ++early) {
      CAPTURE(split);
      CAPTURE(early);
      const std::string failure = run(batch, split, early);
      CHECK_MESSAGE(failure.empty(), failure);
    }
  }
}

}  // namespace

TEST_CASE("an error before the Sync: later messages, sent before or after it, are skipped") {
  // SELECT 1; SELECT 1/0; SELECT 2; SELECT 3; Sync — as libpq's pipeline mode sends them.
  check_every_split({{'P'},
                     {'B'},
                     {'D'},
                     {'E'},
                     {'P'},
                     {'B'},
                     {'D'},
                     {'E', true},
                     {'H'},
                     {'P'},
                     {'B'},
                     {'D'},
                     {'E'},
                     {'P'},
                     {'B'},
                     {'E'},
                     {'S'}});
}

TEST_CASE("an error in Bind, with nothing of the batch left to answer, still skips to Sync") {
  check_every_split({{'P'}, {'B', true}, {'E'}, {'H'}, {'P'}, {'B'}, {'E'}, {'S'}});
}

TEST_CASE("errors in consecutive batches, with simple Queries between them") {
  check_every_split({{'P'}, {'B', true}, {'E'}, {'S'}, {'Q'}, {'P', true}, {'S'}, {'Q', true}});
}

TEST_CASE("pgmux's own Close and Parse before a client's Bind are answered to pgmux only") {
  // A statement prepared on this server first (answers dropped), then the client's batch fails.
  check_every_split({{'C', false, true},
                     {'P', false, true},
                     {'B'},
                     {'E', true},
                     {'H'},
                     {'C', false, true},
                     {'P', false, true},
                     {'B'},
                     {'E'},
                     {'S'}});
}

TEST_CASE("a simple Query's error does not make the server skip") {
  check_every_split({{'Q', true}, {'Q'}, {'P'}, {'B'}, {'E'}, {'S'}});
}

TEST_CASE("a failing pgmux Parse is reported as unprepared and its error dropped") {
  Expectations x;
  x.push({Expect::parse, true, true, "pgmux_abc"});
  x.client_frame('B');
  x.client_frame('E');
  std::vector<std::string> unprepared;
  CHECK(x.error(unprepared) == AnswerAction::drop);
  REQUIRE(unprepared.size() == 1);
  CHECK(unprepared[0] == "pgmux_abc");
  CHECK(x.skipping());
  CHECK_FALSE(x.client_frame('P'));  // discarded by the server: no answer expected
  CHECK(x.client_frame('S'));
  Expect ended{Expect::query};
  std::string why;
  CHECK(x.ready_for_query(ended, why) == AnswerAction::forward);
  CHECK(ended.kind == Expect::sync);
  CHECK(x.empty());
}

TEST_CASE("an answer nobody asked for is unexpected, and says what was expected") {
  Expectations x;
  x.client_frame('P');
  x.client_frame('S');
  std::string why;
  Expect ended{Expect::sync};
  CHECK(x.ready_for_query(ended, why) == AnswerAction::unexpected);
  CHECK(why == "ReadyForQuery (Sync) while expecting ParseComplete");
}

TEST_CASE("a pipeline that never drains keeps the queue bounded") {
  Expectations x;
  std::string why;
  x.client_frame('P');
  for (int i = 0; i < 100000; ++i) {
    x.client_frame('P');  // always one more in flight than answered
    REQUIRE(x.parse_complete(why) == AnswerAction::forward);
  }
  CHECK_FALSE(x.empty());
  CHECK(x.parse_complete(why) == AnswerAction::forward);
  CHECK(x.empty());
}
