// A small SQL lexer: words (keywords and identifiers, unquoted ones folded to lower case),
// skipping string literals and comments, splitting statements at top-level semicolons.
// Dollar-quoted bodies (DO blocks, function definitions) are scanned for session-affecting
// words too, because code inside them can LISTEN, lock or SET for the session.
// It runs on every Query and Parse in transaction mode, so words are views into the query
// (compared without case, as PostgreSQL folds unquoted identifiers) and the word list lives in
// a stack arena: a typical statement costs no heap allocation.
#include "pooler/session/statement_effects.hpp"

#include "pooler/session/sql_chars.hpp"
#include "router/sql_lexing.hpp"

#include <array>
#include <cstdint>
#include <memory_resource>
#include <span>
#include <vector>

namespace pgmux::pooler {

using namespace sql_chars;

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

// A word as written: unquoted words compare without case, quoted ones exactly ("" escapes
// are left doubled: no keyword contains a quote).
struct Word {
  std::string_view text;
  bool quoted = false;
  [[nodiscard]] bool is(std::string_view lower) const {
    return quoted ? text == lower : folds_to(text, lower);
  }
  [[nodiscard]] bool starts_with(std::string_view lower) const {
    return quoted ? text.starts_with(lower) : folds_with_prefix(text, lower);
  }
};

// Words of one statement.
using Statement = std::span<const Word>;

void note_function_words(const Word& w, StatementEffects& fx) {
  static constexpr std::array<std::string_view, 4> kLock = {
      "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
      "pg_try_advisory_lock_shared"};
  if (!w.starts_with("pg_") && !w.is("set_config")) return;  // most words
  for (auto f : kLock) {
    if (w.is(f) && fx.pin == PinReason::none) fx.pin = PinReason::advisory_lock;
  }
  if (w.starts_with("pg_advisory_unlock")) fx.may_release_pin = true;
  if (w.is("set_config")) fx.changes_settings = fx.may_reset_settings = true;
}

// Words inside a dollar-quoted body: no statement structure, just suspicious words.
void note_body_words(std::string_view body, StatementEffects& fx) {
  std::size_t i = 0;
  while (i < body.size()) {
    if (!is_word_start(body[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    // '$' ends a word here: a nested $tag$ may be glued to the keyword after it.
    while (i < body.size() && is_word_char(body[i]) && body[i] != '$') ++i;
    const Word w{body.substr(start, i - start)};
    note_function_words(w, fx);
    if (w.is("set") || w.is("reset")) fx.changes_settings = true;
    if (w.is("reset")) fx.may_reset_settings = true;
    auto pin = [&](PinReason r) {
      if (fx.pin == PinReason::none) fx.pin = r;
    };
    if (w.is("listen")) pin(PinReason::listen);
    if (w.is("temp") || w.is("temporary")) pin(PinReason::temp_table);
    if (w.is("hold")) pin(PinReason::hold_cursor);
    if (w.is("prepare")) pin(PinReason::sql_prepare);  // EXECUTE 'PREPARE …'
  }
}

// The query's words, and where each statement's words begin (top-level semicolons split).
struct Lexed {
  explicit Lexed(std::pmr::memory_resource* arena) : words(arena), starts(arena) {}
  std::pmr::vector<Word> words;
  std::pmr::vector<std::size_t> starts;  // index into words of each statement's first word
  [[nodiscard]] std::size_t statements() const { return starts.size(); }
  [[nodiscard]] Statement statement(std::size_t k) const {
    const std::size_t end = k + 1 < starts.size() ? starts[k + 1] : words.size();
    return Statement(words).subspan(starts[k], end - starts[k]);
  }
};

// The position after the token that starts at `i` (the end of the text when it is not
// terminated).
std::size_t or_end(std::size_t end, std::string_view s) {
  return end == std::string_view::npos ? s.size() : end;
}
// $tag$ … $tag$ (the tag may be empty): its body's words are noted and it stands as one word.
// A lone $1 is a parameter, skipped.
std::size_t after_dollar(std::string_view s, std::size_t i, StatementEffects& fx, bool& quote) {
  const std::string_view tag = router::sql::dollar_tag(s, i);
  quote = !tag.empty();
  if (!quote) {
    std::size_t j = i + 1;
    while (j < s.size() && is_word_char(s[j]) && s[j] != '$') ++j;
    return j;
  }
  const std::size_t body_start = i + tag.size();
  const std::size_t close = s.find(tag, body_start);
  const std::size_t body_end = close == std::string_view::npos ? s.size() : close;
  note_body_words(s.substr(body_start, body_end - body_start), fx);
  return close == std::string_view::npos ? s.size() : close + tag.size();
}

void lex(std::string_view s, StatementEffects& fx, Lexed& out) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  std::size_t statement_start = 0;  // first word of the statement being lexed
  auto push = [&](Word w) {
    if (out.words.size() == statement_start) out.starts.push_back(statement_start);
    out.words.push_back(w);
  };
  while (i < n) {
    const char c = s[i];
    if (c == ';') {
      statement_start = out.words.size();
      ++i;
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      i = or_end(router::sql::block_comment_end(s, i), s);
    } else if (c == '\'') {
      i = or_end(router::sql::string_end(s, i), s);
    } else if (c == '"') {
      const std::size_t past = router::sql::quoted_identifier_end(s, i);
      const bool closed = past != std::string_view::npos;
      push({s.substr(i + 1, (closed ? past - 1 : n) - i - 1), true});
      i = closed ? past : n;
    } else if (c == '$') {
      bool quote = false;
      i = after_dollar(s, i, fx, quote);
      if (quote) push({"$body$", true});
    } else if (is_word_start(c)) {
      const std::size_t start = i;
      while (i < n && is_word_char(s[i])) ++i;
      push({s.substr(start, i - start), false});
    } else {
      ++i;
    }
  }
}

bool kw(Statement st, std::size_t i, std::string_view k) {
  return i < st.size() && !st[i].quoted && folds_to(st[i].text, k);
}

bool has_sequence(Statement st, std::string_view a, std::string_view b) {
  for (std::size_t i = 0; i + 1 < st.size(); ++i) {
    if (kw(st, i, a) && kw(st, i + 1, b)) return true;
  }
  return false;
}

// The temporary schema, by its alias or its real name (pg_temp_N).
bool is_temp_schema(const Word& w) {
  if (w.is("pg_temp")) return true;
  const std::string_view t = w.text;
  if (!w.starts_with("pg_temp_") || t.size() == 8) return false;
  return t.find_first_not_of("0123456789", 8) == std::string_view::npos;
}

// The name DEALLOCATE gives, as the server will see it: unquoted folded, quoted unescaped.
std::string statement_name(const Word& w) {
  std::string name;
  for (std::size_t i = 0; i < w.text.size(); ++i) {
    name.push_back(w.quoted ? w.text[i] : fold(w.text[i]));
    if (w.quoted && w.text[i] == '"') ++i;  // "" stands for one quote
  }
  return name;
}

void classify(Statement st, bool only_statement, StatementEffects& fx) {
  // Quoted words count too: "pg_advisory_lock"(1) calls the function.
  for (const Word& w : st) note_function_words(w, fx);
  auto pin = [&](PinReason r) {
    if (fx.pin == PinReason::none) fx.pin = r;
  };
  if (st.empty()) return;
  const Word first = st[0].quoted ? Word{"", true} : st[0];
  if (first.is("set")) {
    if (kw(st, 1, "local") || kw(st, 1, "transaction") || kw(st, 1, "constraints")) return;
    fx.changes_settings = true;
  } else if (first.is("reset")) {
    fx.changes_settings = fx.may_reset_settings = true;
  } else if (first.is("discard")) {
    fx.changes_settings = fx.may_reset_settings = true;
    fx.may_release_pin = true;
    if (kw(st, 1, "all")) fx.drops_all_prepared = true;
  } else if (first.is("listen")) {
    pin(PinReason::listen);
  } else if (first.is("unlisten") || first.is("close") || first.is("drop")) {
    fx.may_release_pin = true;
  } else if (first.is("declare")) {
    if (has_sequence(st, "with", "hold")) pin(PinReason::hold_cursor);
  } else if (first.is("create")) {
    // CREATE [OR REPLACE] [GLOBAL|LOCAL] {TEMP|TEMPORARY} …, or anything in pg_temp,
    // unless ON COMMIT DROP.
    bool temp = false;
    for (std::size_t i = 1; i < st.size() && i < 5; ++i) {
      if (kw(st, i, "temp") || kw(st, i, "temporary")) temp = true;
    }
    for (const Word& w : st) temp = temp || is_temp_schema(w);
    if (temp && !has_sequence(st, "commit", "drop")) pin(PinReason::temp_table);
  } else if (first.is("select") || first.is("with")) {
    // SELECT … INTO [LOCAL|GLOBAL] [TEMP] t creates a table; a temporary one pins.
    for (std::size_t i = 1; i + 1 < st.size(); ++i) {
      if (!kw(st, i, "into")) continue;
      const std::size_t j = kw(st, i + 1, "local") || kw(st, i + 1, "global") ? i + 2 : i + 1;
      if (kw(st, j, "temp") || kw(st, j, "temporary") || (j < st.size() && is_temp_schema(st[j]))) {
        pin(PinReason::temp_table);
      }
    }
  } else if (first.is("explain")) {
    // EXPLAIN ANALYZE executes CREATE TABLE AS and SELECT INTO: classify what it explains.
    for (std::size_t i = 1; i < st.size(); ++i) {
      if (kw(st, i, "create") || kw(st, i, "select") || kw(st, i, "with")) {
        classify(st.subspan(i), false, fx);
        break;
      }
    }
  } else if (first.is("prepare")) {
    if (!kw(st, 1, "transaction")) pin(PinReason::sql_prepare);
  } else if (first.is("deallocate")) {
    fx.may_release_pin = true;
    std::size_t i = kw(st, 1, "prepare") ? 2 : 1;
    if (kw(st, i, "all")) {
      fx.drops_all_prepared = true;
    } else if (only_statement && i + 1 == st.size()) {
      fx.deallocate_name = statement_name(st[i]);
    }
  }
}

}  // namespace

namespace detail {

StatementEffects lex_statement_effects(std::string_view sql) {
  StatementEffects fx;
  // Enough for about 150 words; longer queries continue on the heap.
  std::array<std::byte, 4096> stack_bytes;
  std::pmr::monotonic_buffer_resource arena(stack_bytes.data(), stack_bytes.size());
  Lexed lexed(&arena);
  lexed.words.reserve(64);
  lexed.starts.reserve(4);
  lex(sql, fx, lexed);
  for (std::size_t k = 0; k < lexed.statements(); ++k) {
    classify(lexed.statement(k), lexed.statements() == 1, fx);
  }
  return fx;
}

}  // namespace detail

StatementEffects scan_statement_effects(std::string_view sql) {
  if (detail::surely_without_effects(sql)) return {};
  return detail::lex_statement_effects(sql);
}

}  // namespace pgmux::pooler
