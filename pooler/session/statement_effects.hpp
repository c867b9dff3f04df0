// What a simple-protocol query string does to session state, found by a light lexical scan (no
// parse tree): transaction pooling needs to know when a client changes settings, takes
// session-only state (LISTEN, session advisory locks, temp tables, WITH HOLD cursors, SQL-level
// PREPARE) or drops prepared statements. The scan errs towards "may have": a false positive
// costs one extra catalog query, a false negative would leak state between clients.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgmux::pooler {

enum class PinReason : std::uint8_t {
  none,
  listen,
  advisory_lock,
  temp_table,
  hold_cursor,
  sql_prepare,
};

[[nodiscard]] const char* to_string(PinReason r);

struct StatementEffects {
  // SET/RESET/DISCARD or set_config(): the session's settings must be re-read afterwards.
  bool changes_settings = false;
  // RESET, DISCARD or set_config() (whose NULL value resets): a setting may have gone back
  // to its default, which for a setting the client gave at startup is not PostgreSQL's
  // answer (that is the startup value).
  bool may_reset_settings = false;
  // The first session-only feature seen, if any: the client must keep its server.
  PinReason pin = PinReason::none;
  // UNLISTEN, pg_advisory_unlock*, DISCARD, CLOSE, DROP, DEALLOCATE: pinned state may be gone.
  bool may_release_pin = false;
  // DEALLOCATE ALL or DISCARD ALL: every prepared statement on the server is dropped.
  bool drops_all_prepared = false;
  // The whole string is one "DEALLOCATE [PREPARE] name": the name, unquoted/case-folded.
  std::string deallocate_name;
};

[[nodiscard]] StatementEffects scan_statement_effects(std::string_view sql);

namespace detail {
// The two halves of scan_statement_effects, apart for the tests: a single pass over the bytes
// that proves a common statement (one SELECT, INSERT, UPDATE, DELETE, BEGIN, COMMIT, …, with no
// function that locks or sets, no INTO, no dollar quote) has no effects; and the full lexer.
[[nodiscard]] bool surely_without_effects(std::string_view sql);
[[nodiscard]] StatementEffects lex_statement_effects(std::string_view sql);
}  // namespace detail

}  // namespace pgmux::pooler
