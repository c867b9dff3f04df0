// The statement scan's shortcut (see statement_effects.hpp): one pass over the raw bytes that
// proves the statements applications send by the thousand have no effect on the session, so
// the lexer need not build their word list.
#include <array>
#include <bit>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pooler/session/sql_chars.hpp"
#include "pooler/session/statement_effects.hpp"

namespace pgmux::pooler {

namespace detail {

using namespace sql_chars;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// A first word after which only function names (and, for SELECT and WITH, INTO) matter to
// classify(): the statements applications send by the thousand.
enum class FirstWord : std::uint8_t { other, plain, may_select_into };
FirstWord first_word_kind(std::string_view w) {
  static constexpr std::array<std::string_view, 11> kPlain = {
      "insert",   "update", "delete", "begin", "commit",   "end",
      "rollback", "values", "show",   "start", "savepoint"};
  if (folds_to(w, "select") || folds_to(w, "with")) return FirstWord::may_select_into;
  for (std::string_view k : kPlain) {
    if (folds_to(w, k)) return FirstWord::plain;
  }
  return FirstWord::other;
}

}  // namespace

// The bytes surely_without_effects() looks at twice; every other byte only has to be passed.
constexpr std::array<std::uint8_t, 256> kAttention = [] {
  std::array<std::uint8_t, 256> t{};
  for (const char c : {';', '$', '_', 'i', 'I'}) t[static_cast<unsigned char>(c)] = 1;
  return t;
}();

namespace {

// The index of the first byte from `i` on that kAttention marks, or s.size(). Sixteen bytes
// per step where SSE2 is there (every x86-64): a typical statement is passed in a handful of
// steps instead of a compare and a branch per byte.
std::size_t next_attention(std::string_view s, std::size_t i) {
#if defined(__SSE2__)
  const __m128i semicolon = _mm_set1_epi8(';');
  const __m128i dollar = _mm_set1_epi8('$');
  const __m128i underscore = _mm_set1_epi8('_');
  const __m128i lower_i = _mm_set1_epi8('i');
  const __m128i upper_i = _mm_set1_epi8('I');
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    const __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, semicolon), _mm_cmpeq_epi8(v, dollar)),
        _mm_or_si128(_mm_cmpeq_epi8(v, underscore),
                     _mm_or_si128(_mm_cmpeq_epi8(v, lower_i), _mm_cmpeq_epi8(v, upper_i))));
    if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit)); mask != 0) {
      return i + static_cast<std::size_t>(std::countr_zero(mask));
    }
  }
#endif
  while (i < s.size() && kAttention[static_cast<unsigned char>(s[i])] == 0) ++i;
  return i;
}

}  // namespace

bool surely_without_effects(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  const std::size_t first = i;
  while (i < s.size() && is_word_char(s[i]) && s[i] != '$') ++i;
  if (first == i || !is_word_start(s[first])) return false;  // a comment, quote or symbol
  const FirstWord kind = first_word_kind(s.substr(first, i - first));
  if (kind == FirstWord::other) return false;
  // The raw bytes, strings and comments included: anything that might matter sends the query
  // to the lexer, which knows what is quoted (a false alarm costs only the full scan).
  for (; i < s.size(); ++i) {
    i = next_attention(s, i);
    if (i == s.size()) break;
    switch (s[i]) {
      case ';':  // a second statement, unless only white space follows
        for (std::size_t j = i + 1; j < s.size(); ++j) {
          if (!is_space(s[j])) return false;
        }
        return true;
      case '$':  // a dollar quote; $1 is a parameter
        if (i + 1 >= s.size() || !is_digit(s[i + 1])) return false;
        break;
      case '_':  // pg_advisory_lock…, set_config
        if (i >= 2 && fold(s[i - 2]) == 'p' && fold(s[i - 1]) == 'g') return false;
        if (i >= 3 && folds_to(s.substr(i - 3, 3), "set")) return false;
        break;
      case 'i':
      case 'I':
        if (kind == FirstWord::may_select_into && folds_with_prefix(s.substr(i), "into")) {
          return false;
        }
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace detail

}  // namespace pgmux::pooler
