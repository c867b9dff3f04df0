// The cache key of a statement: its text with literal values (numbers, strings, dollar-quoted
// bodies) replaced by a placeholder byte, since a statement's class never depends on them.
// Applications that inline values (simple protocol, client-side binding) then hit the cache
// instead of parsing every statement. Comments (hints), identifiers and $1 parameters stay.
// Statements whose meaning can hinge on a literal (SET/RESET, EXPLAIN options) and text the
// scanner cannot follow (an unterminated quote or comment) keep their raw text as the key.
#pragma once

#include <string>
#include <string_view>

namespace pgmux::router {

// Writes the key into `out` (reused: no allocation once it has grown).
void statement_key(std::string_view sql, std::string& out);

}  // namespace pgmux::router
