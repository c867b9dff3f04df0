// The session engine when a server fails or refuses (without sockets, as in
// test_session_engine.cpp): a replica's 25006 refusal and its going away before it answers
// are re-run elsewhere unseen by the client; an error nobody asked for between transactions
// marks the server as ending; an answer nobody asked for puts the server out of step; the
// primary's own 25006 is noted (roles = "auto" looks at once whether it was demoted).
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "session_script.hpp"

using namespace pgmux::pooler;
using namespace pgmux::test;

TEST_CASE("a replica's 25006 refusal of an armed request never reaches the client") {
  const std::string server = error("25006") + ready('I');
  for (std::size_t sc = 0; sc <= server.size(); ++sc) {
    Script s;
    s.state.start_lease(0);
    s.client_sends(query("SELECT nextval('s')"));
    s.state.retry_armed = true;
    s.server_sends(server.substr(0, sc));
    s.server_sends(server.substr(sc));
    CHECK(s.to_client.empty());
    CHECK(s.state.retry_pending);
    CHECK_FALSE(s.state.retry_armed);
    CHECK(s.boundaries == 1);
    CHECK(s.state.quiescent(s.live));
  }
  // Any other first answer releases the held answer and streams on.
  Script s;
  s.state.start_lease(0);
  s.client_sends(query("SELECT 1"));
  s.state.retry_armed = true;
  pgmux::pooler::ServerInspector inspector(s.state, s.live, s.server);
  const std::string row = data_row("1");
  pgmux::protocol::FrameScanner scanner;
  const auto r = scanner.scan(row, inspector);
  CHECK(r.forwardable == 0);
  CHECK(inspector.release_held);
  CHECK_FALSE(s.state.retry_armed);
  CHECK_FALSE(s.state.retry_pending);
}

TEST_CASE("a server answering what nobody asked is out of step") {
  Script s;
  s.client_sends(query("SELECT 1"));
  s.server_sends(parse_complete());
  CHECK(s.bad);
}

TEST_CASE("a replica going away before answering an armed request: re-run, the client sees none") {
  for (const char* sqlstate : {"57P01", "57P02", "57P03"}) {
    CAPTURE(sqlstate);
    Script s;
    s.state.start_lease(0);
    s.client_sends(query("SELECT 1"));
    s.state.retry_armed = true;
    s.server_sends(error(sqlstate));
    CHECK(s.to_client.empty());
    CHECK(s.state.retry_pending);
    CHECK(s.state.retry_lost);
    CHECK_FALSE(s.state.retry_armed);
  }
  // 25006 is a refusal, not a loss: the replica stays and the statement counts as a write.
  Script s;
  s.state.start_lease(0);
  s.client_sends(query("SELECT nextval('s')"));
  s.state.retry_armed = true;
  s.server_sends(error("25006"));
  CHECK(s.state.retry_pending);
  CHECK_FALSE(s.state.retry_lost);
}

TEST_CASE(
    "an error nobody asked for between transactions: the server is ending, the client not told") {
  // A backend's ReadyForQuery and, in the same packet, the FATAL of its exit: at every split.
  const std::string answer = command_complete("SELECT 1") + ready('I');
  const std::string server = answer + error("57P01");
  for (std::size_t sc = 0; sc <= server.size(); ++sc) {
    CAPTURE(sc);
    Script s;
    s.client_sends(query("SELECT 1"));
    s.server_sends(server.substr(0, sc));
    s.server_sends(server.substr(sc));
    CHECK(s.to_client == answer);
    CHECK(s.state.server_closing);
    CHECK_FALSE(s.bad);
  }
  // Inside a transaction the client's session goes with it: the client sees the error.
  {
    Script s;
    s.client_sends(query("BEGIN"));
    s.server_sends(command_complete("BEGIN") + ready('T') + error("57P01"));
    CHECK(s.to_client == command_complete("BEGIN") + ready('T') + error("57P01"));
    CHECK_FALSE(s.state.server_closing);
  }
  // So does a client that keeps its server (session pooling).
  {
    Script s;
    s.state.settings.session_pooling = true;
    s.client_sends(query("SELECT 1"));
    s.server_sends(answer + error("57P01"));
    CHECK(s.to_client == answer + error("57P01"));
    CHECK_FALSE(s.state.server_closing);
  }
}

TEST_CASE("the primary's 25006 reaches the client and says the primary may have been demoted") {
  Script s;
  s.state.start_lease(-1);  // the primary
  s.client_sends(query("INSERT INTO t VALUES (1)"));
  s.server_sends(error("25006") + ready('I'));
  CHECK_FALSE(s.to_client.empty());  // the client's error: nothing re-runs a write
  CHECK(s.state.primary_refused_write);
  CHECK_FALSE(s.state.retry_pending);
  // Another error on the primary, or a replica's refusal, says nothing of the primary's role.
  for (int target : {-1, 0}) {
    Script other;
    other.state.start_lease(target);
    other.client_sends(query("INSERT INTO t VALUES (1)"));
    other.server_sends(error(target < 0 ? "23505" : "25006") + ready('I'));
    CHECK_FALSE(other.state.primary_refused_write);
  }
}
