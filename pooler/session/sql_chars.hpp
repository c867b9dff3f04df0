// Character classes and case folding for the statement scans (statement_effects.cpp,
// statement_shortcut.cpp): SQL words as PostgreSQL's lexer sees them, without a locale.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgmux::pooler::sql_chars {

// Character classes by table: the lexer looks at every character of every Query and Parse,
// and one load per character costs less than the chain of comparisons it replaces. ASCII
// letters only, as PostgreSQL folds identifiers in multi-byte encodings; bytes >= 0x80 may
// start and continue a word.
enum : std::uint8_t { kDigit = 1, kWordStart = 2, kWordChar = 4 };
inline constexpr std::array<std::uint8_t, 256> kCharClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const bool digit = c >= '0' && c <= '9';
    const bool start = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    t[static_cast<std::size_t>(c)] =
        static_cast<std::uint8_t>((digit ? kDigit : 0) | (start ? kWordStart : 0) |
                                  (start || digit || c == '$' ? kWordChar : 0));
  }
  return t;
}();
inline bool has_class(char c, std::uint8_t cls) {
  return (kCharClass[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool is_digit(char c) {
  return has_class(c, kDigit);
}
inline bool is_word_start(char c) {
  return has_class(c, kWordStart);
}
inline bool is_word_char(char c) {
  return has_class(c, kWordChar);
}
inline char fold(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `text` equals `lower` (a lower-case keyword) once folded.
inline bool folds_to(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (fold(text[i]) != lower[i]) return false;
  }
  return true;
}
inline bool folds_with_prefix(std::string_view text, std::string_view lower) {
  return text.size() >= lower.size() && folds_to(text.substr(0, lower.size()), lower);
}

}  // namespace pgmux::pooler::sql_chars
