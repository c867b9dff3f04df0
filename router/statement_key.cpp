// Literal-stripping cache keys, with just enough of PostgreSQL's lexical rules to find
// literals: quotes, escapes, dollar quotes, comments, numbers.
#include "router/statement_key.hpp"

#include <cctype>

namespace pgmux::router {

namespace {

constexpr char kPlaceholder = '\x01';  // cannot appear in SQL outside a literal

bool ident_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '_' || c == '$' || u >= 0x80;
}

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

// The dollar-quote tag starting at sql[i] ('$'), e.g. "$$" or "$fn$"; empty if none.
std::string_view dollar_tag(std::string_view sql, std::size_t i) {
  std::size_t j = i + 1;
  if (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j])) != 0) return {};
  while (j < sql.size() && sql[j] != '$') {
    if (!ident_char(sql[j])) return {};
    ++j;
  }
  if (j >= sql.size()) return {};
  return sql.substr(i, j - i + 1);
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

// Appends the key; false when the text cannot be followed to its end.
bool strip(std::string_view sql, std::string& out) {
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    std::size_t plain = i;
    while (plain < n && !kSpecial.table[static_cast<unsigned char>(sql[plain])]) ++plain;
    if (plain > i) {
      out.append(sql.data() + i, plain - i);
      i = plain;
      if (i == n) break;
    }
    const char c = sql[i];
    const bool token_start = i == 0 || !ident_char(sql[i - 1]);
    if (c == '\'') {
      // E'…' strings take backslash escapes; the E was already copied.
      const bool escapes =
          i > 0 && (sql[i - 1] == 'e' || sql[i - 1] == 'E') && (i == 1 || !ident_char(sql[i - 2]));
      std::size_t j = i + 1;
      for (;;) {
        if (j >= n) return false;
        if (escapes && sql[j] == '\\') {
          j += 2;
          continue;
        }
        if (sql[j] == '\'') {
          if (j + 1 < n && sql[j + 1] == '\'') {
            j += 2;
            continue;
          }
          break;
        }
        ++j;
      }
      out += kPlaceholder;
      i = j + 1;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (;;) {
        j = sql.find('"', j);
        if (j == std::string_view::npos) return false;
        if (j + 1 < n && sql[j + 1] == '"') {
          j += 2;
          continue;
        }
        break;
      }
      out.append(sql.substr(i, j + 1 - i));
      i = j + 1;
    } else if (c == '$' && token_start) {
      const std::string_view tag = dollar_tag(sql, i);
      if (tag.empty()) {
        out += c;  // $1 and friends
        ++i;
        continue;
      }
      const std::size_t end = sql.find(tag, i + tag.size());
      if (end == std::string_view::npos) return false;
      out += kPlaceholder;
      i = end + tag.size();
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      const std::size_t end = sql.find('\n', i);
      const std::size_t stop = end == std::string_view::npos ? n : end;
      out.append(sql.substr(i, stop - i));
      i = stop;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      int depth = 1;
      std::size_t j = i + 2;
      while (depth > 0) {
        if (j + 1 >= n) return false;
        if (sql[j] == '/' && sql[j + 1] == '*') {
          ++depth;
          j += 2;
        } else if (sql[j] == '*' && sql[j + 1] == '/') {
          --depth;
          j += 2;
        } else {
          ++j;
        }
      }
      out.append(sql.substr(i, j - i));
      i = j;
    } else if (token_start && (std::isdigit(static_cast<unsigned char>(c)) != 0 ||
                               (c == '.' && i + 1 < n &&
                                std::isdigit(static_cast<unsigned char>(sql[i + 1])) != 0))) {
      std::size_t j = i;
      while (j < n) {
        const char d = sql[j];
        if (std::isalnum(static_cast<unsigned char>(d)) != 0 || d == '.' || d == '_') {
          ++j;
        } else if ((d == '+' || d == '-') && (sql[j - 1] == 'e' || sql[j - 1] == 'E')) {
          ++j;
        } else {
          break;
        }
      }
      out += kPlaceholder;
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      // Digits inside an identifier (t1, col_2): copy the rest of the identifier.
      std::size_t j = i;
      while (j < n && ident_char(sql[j]) && sql[j] != '$') ++j;
      out.append(sql.data() + i, j - i);
      i = j;
    } else {
      out += c;
      ++i;
    }
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
