// Where PostgreSQL's lexical tokens end: string literals, quoted identifiers, dollar quotes
// and block comments, for the scans that must not mistake their contents for SQL (the
// routing key in statement_key.cpp, the statement effects of the session engine). Each
// function takes the position of the token's first byte and returns the position one past
// its last byte, or npos when the text ends first.
#pragma once

#include <cstddef>
#include <string_view>

namespace pgmux::router::sql {

// Bytes that may continue an identifier (ASCII letters, digits, '_', '$', and any byte of a
// multi-byte character).
inline bool ident_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '_' ||
         c == '$' || u >= 0x80;
}

// '…' with '' for a quote; an E'…' string (an E that is not the end of an identifier) also
// takes backslash escapes.
std::size_t string_end(std::string_view sql, std::size_t i);
// "…" with "" for a quote.
std::size_t quoted_identifier_end(std::string_view sql, std::size_t i);
// /* … */, nested as PostgreSQL nests them.
std::size_t block_comment_end(std::string_view sql, std::size_t i);
// The dollar-quote tag starting at sql[i] ('$'), e.g. "$$" or "$fn$"; empty when it is none
// ($1, a '$' inside a word).
std::string_view dollar_tag(std::string_view sql, std::size_t i);

}  // namespace pgmux::router::sql
