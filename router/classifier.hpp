// Statement classification for read/write routing, on PostgreSQL's own grammar (libpg_query).
// A statement is a read only if it positively is one; anything unparsable or unknown is a
// write. Pure: no I/O, no logging; the caller caches results by statement text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "router/function_catalog.hpp"

namespace pgmux::router {

enum class StatementKind : std::uint8_t {
  read,              // SELECT/VALUES/TABLE/SHOW/read-only EXPLAIN, COPY … TO, no side effects
  write,             // everything else, including what does not parse
  begin_read_only,   // BEGIN/START TRANSACTION READ ONLY (or followed by SET TRANSACTION READ ONLY)
  begin_read_write,  // any other BEGIN/START TRANSACTION
  transaction_end,   // COMMIT, ROLLBACK, SAVEPOINT, RELEASE, … (harmless anywhere)
  session,           // SET/RESET/DISCARD/DEALLOCATE: session state that follows the client
  set_target,        // SET/RESET pgmux.* (target, min_lsn): pgmux's own, never forwarded
};

[[nodiscard]] std::string_view to_string(StatementKind k);

// Where a leading /* pgmux:primary */ or /* pgmux:replica */ comment asks to go.
enum class Hint : std::uint8_t { none, primary, replica };

struct Classification {
  StatementKind kind = StatementKind::write;
  Hint hint = Hint::none;
  std::string setting_name;  // set_target: "pgmux.target", "pgmux.min_lsn", … (lower case)
  std::string target_value;  // set_target: the value in lower case; empty for RESET/DEFAULT
  std::string error;         // why it counted as a write when it did not parse
};

// Classifies one query string (which may hold several statements: the strictest wins).
[[nodiscard]] Classification classify(std::string_view sql, const FunctionCatalog& functions);

// The leading hint comment, if any (cheap: no parsing).
[[nodiscard]] Hint leading_hint(std::string_view sql);

}  // namespace pgmux::router
