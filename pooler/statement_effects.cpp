// A small SQL lexer: words (keywords and identifiers, unquoted ones folded to lower case),
// skipping string literals and comments, splitting statements at top-level semicolons.
// Dollar-quoted bodies (DO blocks, function definitions) are scanned for session-affecting
// words too, because code inside them can LISTEN, lock or SET for the session.
#include "pooler/statement_effects.hpp"

#include <array>
#include <cctype>
#include <vector>

namespace pgmux::pooler {

const char* to_string(PinReason r) {
  switch (r) {
    case PinReason::none:
      return "none";
    case PinReason::listen:
      return "LISTEN";
    case PinReason::advisory_lock:
      return "session advisory lock";
    case PinReason::temp_table:
      return "temporary table";
    case PinReason::hold_cursor:
      return "cursor WITH HOLD";
    case PinReason::sql_prepare:
      return "SQL PREPARE";
  }
  return "?";
}

namespace {

bool is_word_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_word_char(char c) {
  return is_word_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '$';
}

struct Word {
  std::string text;
  bool quoted = false;
};

// Words of one statement, or of a dollar-quoted body.
using Statement = std::vector<Word>;

void note_function_words(const std::string& w, StatementEffects& fx) {
  static constexpr std::array<std::string_view, 4> kLock = {
      "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
      "pg_try_advisory_lock_shared"};
  for (auto f : kLock) {
    if (w == f && fx.pin == PinReason::none) fx.pin = PinReason::advisory_lock;
  }
  if (w.starts_with("pg_advisory_unlock")) fx.may_release_pin = true;
  if (w == "set_config") fx.changes_settings = true;
}

// Words inside a dollar-quoted body: no statement structure, just suspicious words.
void note_body_words(std::string_view body, StatementEffects& fx) {
  std::size_t i = 0;
  while (i < body.size()) {
    if (!is_word_start(body[i])) {
      ++i;
      continue;
    }
    std::string w;
    // '$' ends a word here: a nested $tag$ may be glued to the keyword after it.
    while (i < body.size() && is_word_char(body[i]) && body[i] != '$') {
      w.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(body[i]))));
      ++i;
    }
    note_function_words(w, fx);
    if (w == "set" || w == "reset") fx.changes_settings = true;
    auto pin = [&](PinReason r) {
      if (fx.pin == PinReason::none) fx.pin = r;
    };
    if (w == "listen") pin(PinReason::listen);
    if (w == "temp" || w == "temporary") pin(PinReason::temp_table);
    if (w == "hold") pin(PinReason::hold_cursor);
    if (w == "prepare") pin(PinReason::sql_prepare);  // EXECUTE 'PREPARE …'
  }
}

std::vector<Statement> lex(std::string_view s, StatementEffects& fx) {
  std::vector<Statement> out(1);
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const char c = s[i];
    if (c == ';') {
      if (!out.back().empty()) out.emplace_back();
      ++i;
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;  // block comments nest in PostgreSQL
      while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '\'') {
      // Standard string ('' escapes a quote); E'' strings may also use \' .
      const bool escapes = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e');
      ++i;
      while (i < n) {
        if (escapes && s[i] == '\\') {
          i += 2;
        } else if (s[i] == '\'') {
          if (i + 1 < n && s[i + 1] == '\'') {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
    } else if (c == '"') {
      std::string w;
      ++i;
      while (i < n) {
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') {
            w.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        w.push_back(s[i++]);
      }
      out.back().push_back({std::move(w), true});
    } else if (c == '$') {
      // $tag$ … $tag$ (tag may be empty); a lone $1 is a parameter.
      std::size_t j = i + 1;
      while (j < n && (is_word_char(s[j])) && s[j] != '$') ++j;
      if (j < n && s[j] == '$' &&
          (j == i + 1 || !std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
        const std::string_view tag = s.substr(i, j - i + 1);
        const std::size_t body_start = j + 1;
        const std::size_t close = s.find(tag, body_start);
        const std::size_t body_end = close == std::string_view::npos ? n : close;
        note_body_words(s.substr(body_start, body_end - body_start), fx);
        out.back().push_back({"$body$", true});
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        i = j;
      }
    } else if (is_word_start(c)) {
      std::string w;
      while (i < n && is_word_char(s[i])) {
        w.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
        ++i;
      }
      out.back().push_back({std::move(w), false});
    } else {
      ++i;
    }
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

bool kw(const Statement& st, std::size_t i, std::string_view k) {
  return i < st.size() && !st[i].quoted && st[i].text == k;
}

bool has_sequence(const Statement& st, std::string_view a, std::string_view b) {
  for (std::size_t i = 0; i + 1 < st.size(); ++i) {
    if (kw(st, i, a) && kw(st, i + 1, b)) return true;
  }
  return false;
}

// The temporary schema, by its alias or its real name (pg_temp_N).
bool is_temp_schema(const Word& w) {
  const std::string_view t = w.text;
  if (t == "pg_temp") return true;
  if (!t.starts_with("pg_temp_") || t.size() == 8) return false;
  return t.find_first_not_of("0123456789", 8) == std::string_view::npos;
}

void classify(const Statement& st, bool only_statement, StatementEffects& fx) {
  // Quoted words count too: "pg_advisory_lock"(1) calls the function.
  for (const Word& w : st) note_function_words(w.text, fx);
  auto pin = [&](PinReason r) {
    if (fx.pin == PinReason::none) fx.pin = r;
  };
  if (st.empty()) return;
  const std::string& first = st[0].quoted ? std::string() : st[0].text;
  if (first == "set") {
    if (kw(st, 1, "local") || kw(st, 1, "transaction") || kw(st, 1, "constraints")) return;
    fx.changes_settings = true;
  } else if (first == "reset") {
    fx.changes_settings = true;
  } else if (first == "discard") {
    fx.changes_settings = true;
    fx.may_release_pin = true;
    if (kw(st, 1, "all")) fx.drops_all_prepared = true;
  } else if (first == "listen") {
    pin(PinReason::listen);
  } else if (first == "unlisten" || first == "close" || first == "drop") {
    fx.may_release_pin = true;
  } else if (first == "declare") {
    if (has_sequence(st, "with", "hold")) pin(PinReason::hold_cursor);
  } else if (first == "create") {
    // CREATE [OR REPLACE] [GLOBAL|LOCAL] {TEMP|TEMPORARY} …, or anything in pg_temp,
    // unless ON COMMIT DROP.
    bool temp = false;
    for (std::size_t i = 1; i < st.size() && i < 5; ++i) {
      if (kw(st, i, "temp") || kw(st, i, "temporary")) temp = true;
    }
    for (const Word& w : st) temp = temp || is_temp_schema(w);
    if (temp && !has_sequence(st, "commit", "drop")) pin(PinReason::temp_table);
  } else if (first == "select" || first == "with") {
    // SELECT … INTO [LOCAL|GLOBAL] [TEMP] t creates a table; a temporary one pins.
    for (std::size_t i = 1; i + 1 < st.size(); ++i) {
      if (!kw(st, i, "into")) continue;
      const std::size_t j = kw(st, i + 1, "local") || kw(st, i + 1, "global") ? i + 2 : i + 1;
      if (kw(st, j, "temp") || kw(st, j, "temporary") || (j < st.size() && is_temp_schema(st[j]))) {
        pin(PinReason::temp_table);
      }
    }
  } else if (first == "explain") {
    // EXPLAIN ANALYZE executes CREATE TABLE AS and SELECT INTO: classify what it explains.
    for (std::size_t i = 1; i < st.size(); ++i) {
      if (kw(st, i, "create") || kw(st, i, "select") || kw(st, i, "with")) {
        classify(Statement(st.begin() + static_cast<std::ptrdiff_t>(i), st.end()), false, fx);
        break;
      }
    }
  } else if (first == "prepare") {
    if (!kw(st, 1, "transaction")) pin(PinReason::sql_prepare);
  } else if (first == "deallocate") {
    fx.may_release_pin = true;
    std::size_t i = kw(st, 1, "prepare") ? 2 : 1;
    if (kw(st, i, "all")) {
      fx.drops_all_prepared = true;
    } else if (only_statement && i + 1 == st.size()) {
      fx.deallocate_name = st[i].text;
    }
  }
}

}  // namespace

StatementEffects scan_statement_effects(std::string_view sql) {
  StatementEffects fx;
  const auto statements = lex(sql, fx);
  for (const auto& st : statements) classify(st, statements.size() == 1, fx);
  return fx;
}

}  // namespace pgmux::pooler
