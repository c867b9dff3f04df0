// Literal-stripping cache keys, with just enough of PostgreSQL's lexical rules to find
// literals: quotes, escapes, dollar quotes, comments, numbers.
#include "router/statement_key.hpp"

#include <algorithm>
#include <cctype>

#include "router/sql_lexing.hpp"

namespace pgmux::router {

namespace {

using sql::block_comment_end;
using sql::dollar_tag;
using sql::ident_char;
using sql::quoted_identifier_end;
using sql::string_end;

constexpr char kPlaceholder = '\x01';  // cannot appear in SQL outside a literal

bool starts_with_keyword(std::string_view sql, std::string_view kw) {
  std::size_t i = 0;
  for (;;) {  // skip blanks and comments
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i])) != 0) ++i;
    if (sql.substr(i, 2) == "--") {
      i = sql.find('\n', i);
      if (i == std::string_view::npos) return false;
    } else if (sql.substr(i, 2) == "/*") {
      i = sql.find("*/", i + 2);
      if (i == std::string_view::npos) return false;
      i += 2;
    } else {
      break;
    }
  }
  if (sql.size() - i < kw.size()) return false;
  for (std::size_t k = 0; k < kw.size(); ++k) {
    if (std::tolower(static_cast<unsigned char>(sql[i + k])) != kw[k]) return false;
  }
  return i + kw.size() == sql.size() || !ident_char(sql[i + kw.size()]);
}

// Characters that may start something strip() must look at; runs of others are copied whole.
struct SpecialChars {
  bool table[256] = {};
  constexpr SpecialChars() {
    for (char c : std::string_view("'\"$-/.0123456789"))
      table[static_cast<unsigned char>(c)] = true;
  }
};
constexpr SpecialChars kSpecial;

// A numeric literal (digits, a decimal point, an exponent with its sign).
std::size_t number_end(std::string_view sql, std::size_t i) {
  std::size_t j = i;
  while (j < sql.size()) {
    const char d = sql[j];
    if (std::isalnum(static_cast<unsigned char>(d)) != 0 || d == '.' || d == '_') {
      ++j;
    } else if ((d == '+' || d == '-') && (sql[j - 1] == 'e' || sql[j - 1] == 'E')) {
      ++j;
    } else {
      break;
    }
  }
  return j;
}
bool is_digit_at(std::string_view sql, std::size_t i) {
  return i < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i])) != 0;
}

// Appends the key; false when the text cannot be followed to its end.
bool strip(std::string_view sql, std::string& out) {
  constexpr std::size_t npos = std::string_view::npos;
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    std::size_t plain = i;
    while (plain < n && !kSpecial.table[static_cast<unsigned char>(sql[plain])]) ++plain;
    out.append(sql.data() + i, plain - i);  // the E of an E'…' string among it
    i = plain;
    if (i == n) break;
    const char c = sql[i];
    const bool token_start = i == 0 || !ident_char(sql[i - 1]);
    std::size_t end = i + 1;  // what the token takes; a literal becomes the placeholder
    bool literal = false;
    if (c == '\'') {
      end = string_end(sql, i);
      literal = true;
    } else if (c == '"') {
      end = quoted_identifier_end(sql, i);
    } else if (c == '$' && token_start) {
      const std::string_view tag = dollar_tag(sql, i);  // empty for $1 and friends
      if (!tag.empty()) {
        end = sql.find(tag, i + tag.size());
        if (end != npos) end += tag.size();
        literal = true;
      }
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      end = std::min(sql.find('\n', i), n);
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      end = block_comment_end(sql, i);
    } else if (token_start && (is_digit_at(sql, i) || (c == '.' && is_digit_at(sql, i + 1)))) {
      end = number_end(sql, i);
      literal = true;
    } else if (is_digit_at(sql, i)) {
      // Digits inside an identifier (t1, col_2): copy the rest of the identifier.
      end = i;
      while (end < n && ident_char(sql[end]) && sql[end] != '$') ++end;
    }
    if (end == npos) return false;  // not terminated: no key
    if (literal) {
      out += kPlaceholder;
    } else {
      out.append(sql.substr(i, end - i));
    }
    i = end;
  }
  return true;
}

}  // namespace

void statement_key(std::string_view sql, std::string& out) {
  out.clear();
  if (starts_with_keyword(sql, "set") || starts_with_keyword(sql, "reset") ||
      starts_with_keyword(sql, "explain") || !strip(sql, out)) {
    out.assign(sql);
  }
}

}  // namespace pgmux::router
