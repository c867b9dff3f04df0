#include "router/sql_lexing.hpp"

namespace pgmux::router::sql {

std::size_t string_end(std::string_view sql, std::size_t i) {
  const bool escapes =
      i > 0 && (sql[i - 1] == 'e' || sql[i - 1] == 'E') && (i == 1 || !ident_char(sql[i - 2]));
  for (std::size_t j = i + 1; j < sql.size();) {
    if (escapes && sql[j] == '\\') {
      j += 2;
    } else if (sql[j] != '\'') {
      ++j;
    } else if (j + 1 < sql.size() && sql[j + 1] == '\'') {
      j += 2;
    } else {
      return j + 1;
    }
  }
  return std::string_view::npos;
}

std::size_t quoted_identifier_end(std::string_view sql, std::size_t i) {
  for (std::size_t j = i + 1;;) {
    j = sql.find('"', j);
    if (j == std::string_view::npos) return j;
    if (j + 1 >= sql.size() || sql[j + 1] != '"') return j + 1;
    j += 2;
  }
}

std::size_t block_comment_end(std::string_view sql, std::size_t i) {
  int depth = 1;
  std::size_t j = i + 2;
  while (depth > 0) {
    if (j + 1 >= sql.size()) return std::string_view::npos;
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
  return j;
}

std::string_view dollar_tag(std::string_view sql, std::size_t i) {
  std::size_t j = i + 1;
  if (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') return {};
  while (j < sql.size() && sql[j] != '$') {
    if (!ident_char(sql[j])) return {};
    ++j;
  }
  if (j >= sql.size()) return {};
  return sql.substr(i, j - i + 1);
}

}  // namespace pgmux::router::sql
