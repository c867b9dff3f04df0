// The session engine without sockets: byte scripts of a client's messages and a server's
// answers go through the two inspectors exactly as the session's loops feed them (the frame
// scanner, the edits applied to what is forwarded, dropped frames consumed), cut into two
// reads at every byte. Whatever the cut, the server must receive the same rewritten bytes,
// the client the same answers, and the session must end in the same state.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>

#include "session_script.hpp"

using namespace pgmux::pooler;
using namespace pgmux::test;

TEST_CASE("a named statement is prepared under pgmux's name and its answers reach the client") {
  const std::string client = parse("s1", "SELECT $1") + bind_frame("s1") + execute() + sync_frame();
  for (std::size_t cc = 0; cc <= client.size(); ++cc) {
    Script probe;
    probe.client_sends(client);
    const std::string name = server_name_of(probe, "s1");
    // Close first (pgmux's own: its answer is dropped), then the client's Parse renamed.
    const std::string expected_to_server = close_statement(name) + parse(name, "SELECT $1") +
                                           bind_frame(name) + execute() + sync_frame();
    const std::string server = close_complete() + parse_complete() + bind_complete() +
                               data_row("1") + command_complete("SELECT 1") + ready('I');
    const std::string expected_to_client = parse_complete() + bind_complete() + data_row("1") +
                                           command_complete("SELECT 1") + ready('I');
    for (std::size_t sc = 0; sc <= server.size(); ++sc) {
      CAPTURE(cc);
      CAPTURE(sc);
      Script s;
      run_cut(s, client, cc, server, sc);
      CHECK(s.to_server == expected_to_server);
      CHECK(s.to_client == expected_to_client);
      CHECK(s.boundaries == 1);
      CHECK(s.state.quiescent(s.live));
      CHECK(s.state.boundary_pending);
      CHECK(s.server.statements().contains(name));
      CHECK(s.state.requests_on_lease == 1);
    }
  }
}

TEST_CASE("a statement follows its client to a server that lacks it") {
  Script s;
  s.client_sends(parse("s1", "SELECT 1") + sync_frame());
  s.server_sends(close_complete() + parse_complete() + ready('I'));
  const std::string name = server_name_of(s, "s1");
  const std::string client = bind_frame("s1") + execute() + sync_frame();
  const std::string server = close_complete() + parse_complete() + bind_complete() + data_row("1") +
                             command_complete("SELECT 1") + ready('I');
  for (std::size_t cc = 0; cc <= client.size(); ++cc) {
    for (std::size_t sc = 0; sc <= server.size(); ++sc) {
      CAPTURE(cc);
      CAPTURE(sc);
      // The next lease: same client state, another server, fresh per-lease state.
      Script next;
      next.state.statements = std::make_unique<ClientStatements>(*s.state.statements);
      run_cut(next, client, cc, server, sc);
      CHECK(next.to_server == close_statement(name) + parse(name, "SELECT 1") + bind_frame(name) +
                                  execute() + sync_frame());
      // Both the Close and the Parse are pgmux's own: the client hears only its Bind's answers.
      CHECK(next.to_client ==
            bind_complete() + data_row("1") + command_complete("SELECT 1") + ready('I'));
      CHECK(next.boundaries == 1);
      CHECK(next.server.statements().contains(name));
    }
  }
}

TEST_CASE("an error in a batch: the client sees it, the statement is not left prepared") {
  const std::string client = parse("bad", "SELEC 1") + bind_frame("bad") + execute() + sync_frame();
  const std::string server = close_complete() + error("42601") + ready('I');
  for (std::size_t cc = 0; cc <= client.size(); ++cc) {
    for (std::size_t sc = 0; sc <= server.size(); ++sc) {
      CAPTURE(cc);
      CAPTURE(sc);
      Script s;
      run_cut(s, client, cc, server, sc);
      CHECK(s.to_client == error("42601") + ready('I'));
      CHECK(s.boundaries == 1);
      CHECK(s.state.quiescent(s.live));
      CHECK_FALSE(s.server.statements().contains(server_name_of(s, "bad")));
    }
  }
}

TEST_CASE("DEALLOCATE of a protocol-level statement runs under its server-side name") {
  Script s;
  s.client_sends(parse("s1", "SELECT 1") + sync_frame());
  const std::string name = server_name_of(s, "s1");
  // A server that never prepared it: pgmux prepares it in a Sync of its own first.
  const std::string client = query("DEALLOCATE s1");
  const std::string server = close_complete() + parse_complete() + ready('I') +
                             command_complete("DEALLOCATE") + ready('I');
  for (std::size_t sc = 0; sc <= server.size(); ++sc) {
    CAPTURE(sc);
    Script t;
    t.state.statements = std::make_unique<ClientStatements>(*s.state.statements);
    run_cut(t, client, client.size() / 2, server, sc);
    CHECK(t.to_server == close_statement(name) + parse(name, "SELECT 1") + sync_frame() +
                             query("DEALLOCATE " + name));
    CHECK(t.to_client == command_complete("DEALLOCATE") + ready('I'));
    CHECK(t.boundaries == 1);
    CHECK(t.state.find_statement("s1") == nullptr);
    CHECK_FALSE(t.server.statements().contains(name));
  }
}

TEST_CASE("session effects: settings are read back, session-only state pins") {
  Script s;
  s.client_sends(query("SET search_path = app"));
  CHECK(s.state.settings_changed);
  CHECK(s.state.pin == PinReason::none);
  s.server_sends(command_complete("SET") + ready('I'));
  CHECK(s.boundaries == 1);

  Script listen;
  listen.client_sends(query("LISTEN jobs"));
  CHECK(listen.state.pin == PinReason::listen);

  // pin_session_state = "error": the server raises the refusal in the client's transaction.
  Script refuse;
  refuse.state.settings.refuse_session_state = true;
  refuse.client_sends(query("LISTEN jobs"));
  CHECK(refuse.state.pin == PinReason::none);
  CHECK(refuse.to_server == query(ClientInspector::refusal_sql(PinReason::listen)));

  // Session pooling keeps its server: a SET stays there, only a reset is read back.
  Script session;
  session.state.settings.session_pooling = true;
  session.client_sends(query("SET search_path = app"));
  CHECK_FALSE(session.state.settings_changed);
  session.client_sends(query("RESET ALL"));
  CHECK(session.state.settings_changed);
}

TEST_CASE("ParameterStatus is recorded for the server and for the client") {
  const std::string server =
      parameter_status("TimeZone", "UTC") + command_complete("SET") + ready('I');
  for (std::size_t sc = 0; sc <= server.size(); ++sc) {
    Script s;
    run_cut(s, query("SET TimeZone = 'UTC'"), 3, server, sc);
    CHECK(s.to_client == server);
    CHECK(s.server.reported["timezone"] == "UTC");
    REQUIRE(s.told_client.find("TimeZone") != nullptr);
    CHECK(*s.told_client.find("TimeZone") == "UTC");
  }
}

TEST_CASE("statement mode refuses a transaction block at its first ReadyForQuery") {
  const std::string server = command_complete("BEGIN") + ready('T');
  for (std::size_t sc = 0; sc <= server.size(); ++sc) {
    Script s;
    s.state.settings.statement_mode = true;
    run_cut(s, query("BEGIN"), 2, server, sc);
    CHECK(s.refused_transaction);
    CHECK(s.to_client == command_complete("BEGIN"));  // the ReadyForQuery 'T' is not sent
    CHECK(s.server.tx_status() == 'T');
  }
}

TEST_CASE("read-your-writes holds a write's final ReadyForQuery until its position is read") {
  using pgmux::router::StatementKind;
  // A primary lease whose first request was `kind`, running `sql` answered with `tag`.
  auto primary_lease = [](StatementKind kind, std::string_view sql, std::string_view tag) {
    auto s = std::make_unique<Script>();
    s->state.settings.records_write_positions = true;
    s->state.start_lease(-1);
    s->state.first_kind = kind;
    s->client_sends(query(sql));
    s->server_sends(command_complete(tag) + ready('I'));
    CHECK(s->boundaries == 1);
    return s;
  };
  const auto write = primary_lease(StatementKind::write, "INSERT INTO t VALUES (1)", "INSERT 0 1");
  CHECK(write->state.rfq_held);
  CHECK(write->to_client == command_complete("INSERT 0 1"));

  const auto read = primary_lease(StatementKind::read, "SELECT 1", "SELECT 1");
  CHECK_FALSE(read->state.rfq_held);
  CHECK(read->to_client == command_complete("SELECT 1") + ready('I'));
}
