// The lexical scan that tells transaction pooling what a simple-protocol query does to the
// session: settings changes, session-only state that pins a server, and prepared statements
// dropped. Table-driven: one row per query string, every field of StatementEffects checked.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "pooler/session/statement_effects.hpp"

using namespace pgmux::pooler;

namespace {

struct Case {
  std::string_view sql;
  bool changes_settings = false;
  PinReason pin = PinReason::none;
  bool may_release_pin = false;
  bool drops_all_prepared = false;
  std::string_view deallocate_name = {};
};

constexpr PinReason kNone = PinReason::none;
constexpr PinReason kListen = PinReason::listen;
constexpr PinReason kAdvisory = PinReason::advisory_lock;
constexpr PinReason kTemp = PinReason::temp_table;
constexpr PinReason kHold = PinReason::hold_cursor;
constexpr PinReason kPrepare = PinReason::sql_prepare;

void check_cases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    INFO("sql: ", std::string(c.sql));
    const StatementEffects fx = scan_statement_effects(c.sql);
    CHECK(fx.changes_settings == c.changes_settings);
    CHECK(std::string(to_string(fx.pin)) == std::string(to_string(c.pin)));
    CHECK(fx.may_release_pin == c.may_release_pin);
    CHECK(fx.drops_all_prepared == c.drops_all_prepared);
    CHECK(fx.deallocate_name == std::string(c.deallocate_name));
    // The one-pass shortcut never hides what the lexer finds.
    const StatementEffects full = detail::lex_statement_effects(c.sql);
    CHECK(full.changes_settings == fx.changes_settings);
    CHECK(full.pin == fx.pin);
    CHECK(full.may_release_pin == fx.may_release_pin);
    CHECK(full.drops_all_prepared == fx.drops_all_prepared);
    if (detail::surely_without_effects(c.sql)) {
      CHECK_FALSE(c.changes_settings);
      CHECK(c.pin == kNone);
      CHECK_FALSE(c.may_release_pin);
      CHECK_FALSE(c.drops_all_prepared);
    }
  }
}

bool no_effects(const StatementEffects& fx) {
  return !fx.changes_settings && !fx.may_reset_settings && fx.pin == kNone && !fx.may_release_pin &&
         !fx.drops_all_prepared && fx.deallocate_name.empty();
}

}  // namespace

TEST_CASE("statement effects: session settings changes") {
  check_cases({
      {"SET x = 1", true},
      {"SET x TO 1", true},
      {"SET search_path = 'a;b'", true},
      {"SET LOCAL x = 1", false},
      {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false},
      {"SET CONSTRAINTS ALL DEFERRED", false},
      {"set session timezone 'UTC'", true},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", true},
      {"SET ROLE admin", true},
      {"SET SESSION AUTHORIZATION bob", true},
      {"RESET ALL", true},
      {"reset search_path", true},
      {"DISCARD ALL", true, kNone, true, true},
      {"DISCARD TEMP", true, kNone, true, false},
      {"DISCARD PLANS", true, kNone, true, false},
      {"SELECT set_config('a','b',false)", true},
      {"SELECT pg_catalog.set_config('a', 'b', false)", true},
      {"SELECT 1", false},
      {"", false},
      {";;;", false},
      // SET as part of other statements is not a session setting.
      {"UPDATE t SET x = 1", false},
      {"update t set x = 1 where id = 2", false},
      {"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 2", false},
      {"ALTER TABLE t ALTER COLUMN x SET DEFAULT 1", false},
      {"ALTER ROLE r SET search_path = a", false},
  });
}

TEST_CASE("statement effects: session-only state pins the server") {
  check_cases({
      {"LISTEN ch", false, kListen},
      {"UNLISTEN *", false, kNone, true},
      {"UNLISTEN ch", false, kNone, true},
      {"SELECT pg_advisory_lock(1)", false, kAdvisory},
      {"SELECT pg_advisory_lock_shared(1)", false, kAdvisory},
      {"SELECT pg_try_advisory_lock(1)", false, kAdvisory},
      {"SELECT pg_try_advisory_lock_shared(1, 2)", false, kAdvisory},
      {"SELECT pg_catalog.pg_advisory_lock(1)", false, kAdvisory},
      // Transaction-level advisory locks end with the transaction: no pin.
      {"SELECT pg_advisory_xact_lock(1)", false, kNone},
      {"SELECT pg_try_advisory_xact_lock(1)", false, kNone},
      {"SELECT pg_advisory_xact_lock_shared(1)", false, kNone},
      {"SELECT pg_advisory_unlock(1)", false, kNone, true},
      {"SELECT pg_advisory_unlock_shared(1)", false, kNone, true},
      {"SELECT pg_advisory_unlock_all()", false, kNone, true},
      {"CREATE TEMP TABLE t(x int)", false, kTemp},
      {"CREATE TEMPORARY TABLE t(x int) ON COMMIT DROP", false, kNone},
      {"CREATE TEMP TABLE t(x int) ON COMMIT DELETE ROWS", false, kTemp},
      {"CREATE TEMP TABLE t(x int) ON COMMIT PRESERVE ROWS", false, kTemp},
      {"CREATE GLOBAL TEMPORARY TABLE t(x int)", false, kTemp},
      {"CREATE LOCAL TEMP TABLE t(x int)", false, kTemp},
      {"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", false, kTemp},
      {"CREATE TEMP SEQUENCE s", false, kTemp},
      {"CREATE TABLE t(x int)", false, kNone},
      {"CREATE TABLE temperature(x int)", false, kNone},
      {"SELECT * INTO TEMP t FROM x", false, kTemp},
      {"SELECT * INTO TEMPORARY TABLE t FROM x", false, kTemp},
      {"WITH a AS (SELECT 1) SELECT * INTO TEMP t FROM a", false, kTemp},
      {"SELECT * INTO t FROM x", false, kNone},
      {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", false, kHold},
      {"DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1", false, kHold},
      {"DECLARE c CURSOR FOR SELECT 1", false, kNone},
      {"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", false, kNone},
      {"CLOSE c", false, kNone, true},
      {"CLOSE ALL", false, kNone, true},
      {"DROP TABLE t", false, kNone, true},
      {"PREPARE p AS SELECT 1", false, kPrepare},
      {"PREPARE p(int) AS SELECT $1", false, kPrepare},
      {"PREPARE TRANSACTION 'x'", false, kNone},
      {"COMMIT PREPARED 'x'", false, kNone},
      // Several statements: the first pin is reported, releases are still seen.
      {"BEGIN; LISTEN ch; COMMIT", false, kListen},
      {"LISTEN a; DECLARE c CURSOR WITH HOLD FOR SELECT 1", false, kListen},
      {"SELECT pg_advisory_lock(1); SELECT pg_advisory_unlock(1)", false, kAdvisory, true},
  });
}

TEST_CASE("statement effects: DEALLOCATE") {
  check_cases({
      {"DEALLOCATE p", false, kNone, true, false, "p"},
      {"DEALLOCATE p;", false, kNone, true, false, "p"},
      {"DEALLOCATE PREPARE P", false, kNone, true, false, "p"},
      {"deallocate MyStmt", false, kNone, true, false, "mystmt"},
      {"DEALLOCATE \"MixedCase\"", false, kNone, true, false, "MixedCase"},
      {"DEALLOCATE PREPARE \"a\"\"b\"", false, kNone, true, false, "a\"b"},
      // A statement named "all" is not DEALLOCATE ALL.
      {"DEALLOCATE \"all\"", false, kNone, true, false, "all"},
      {"DEALLOCATE ALL", false, kNone, true, true},
      {"DEALLOCATE PREPARE ALL", false, kNone, true, true},
      {"dealLocate all", false, kNone, true, true},
      // Only a string that is one DEALLOCATE statement yields a name.
      {"DEALLOCATE a; SELECT 1", false, kNone, true},
      {"SELECT 1; DEALLOCATE a", false, kNone, true},
      {"DEALLOCATE", false, kNone, true},
      {"DEALLOCATE p q", false, kNone, true},
  });
}

TEST_CASE("statement effects: strings, comments and quoted identifiers hide keywords") {
  check_cases({
      {"SELECT 'SET x=1'", false},
      {"SELECT 'it''s; LISTEN ch'", false},
      {"SELECT 1 -- listen x", false},
      {"SELECT 1 -- SET x = 1\n", false},
      {"/* listen */ SELECT 1", false},
      {"SELECT \"listen\" FROM t", false},
      {"SELECT \"set\" FROM t", false},
      {"SELECT 1 AS \"LISTEN\"; SELECT 2 AS \"temp\"", false},
      {"SELECT 'pg_advisory_lock(1)'", false},
      {"SELECT 1 /* ; LISTEN ch */", false},
      // ...but what follows them counts.
      {"SELECT 1; SET x=1", true},
      {"SELECT 1;SET x=1", true},
      {"SELECT ';' ; LISTEN ch", false, kListen},
      {"/* c */ SET x = 1", true},
      {"-- comment\nSET x = 1", true},
      {"-- comment\n/* another */\n  LISTEN ch", false, kListen},
      {"SELECT 1 -- c\n; LISTEN ch", false, kListen},
      // E'' strings: \' does not end the string.
      {"SELECT E'\\''; SET x = 1", true},
      {"SELECT e'\\''; SET x = 1", true},
      {"SELECT E'\\'; LISTEN ch; --'", false},
      // Standard strings: a backslash is just a character.
      {"SELECT 'a\\'; SET x = 1", true},
      // Block comments nest.
      {"/* outer /* inner */ LISTEN ch */ SELECT 1", false},
      {"/* a /* b */ c */ SET x = 1", true},
      // Unterminated tokens end at the end of the string.
      {"SELECT 'abc", false},
      {"/* unterminated LISTEN", false},
      {"SELECT \"abc", false},
  });
}

TEST_CASE("statement effects: dollar quotes are scanned, positional parameters are not quotes") {
  check_cases({
      {"DO $$BEGIN PERFORM pg_advisory_lock(1); END$$", false, kAdvisory},
      {"DO $f$BEGIN SET search_path = a; END$f$", true},
      {"DO $f$ BEGIN PERFORM set_config('a', 'b', false); END $f$", true},
      {"DO $f$BEGIN EXECUTE 'LISTEN ch'; END$f$", false, kListen},
      {"DO $f$BEGIN CREATE TEMP TABLE t(x int); END$f$", false, kTemp},
      {"DO $f$BEGIN EXECUTE 'DECLARE c CURSOR WITH HOLD FOR SELECT 1'; END$f$", false, kHold},
      {"DO $f$BEGIN PERFORM pg_advisory_unlock_all(); END$f$", false, kNone, true},
      // A nested dollar quote glued to a keyword.
      {"DO $outer$ BEGIN EXECUTE $q$SET x = 1$q$; END $outer$", true},
      {"DO $outer$ BEGIN EXECUTE $q$LISTEN ch$q$; END $outer$", false, kListen},
      // The body ends at its own tag; what follows is ordinary SQL.
      {"DO $a$ SELECT 1 $a$; LISTEN ch", false, kListen},
      {"DO $a$ SELECT '$b$' $a$; SET x = 1", true},
      // $1 is a parameter, not the start of a dollar quote.
      {"SELECT $1::int; SET a=1", true},
      {"SELECT $1, $2; LISTEN ch", false, kListen},
      {"SELECT $12 ; SET a = 1", true},
      // $ inside an identifier is part of it.
      {"SELECT a$b FROM t; SET x = 1", true},
      // An unterminated body runs to the end of the string.
      {"SELECT $$ LISTEN", false, kListen},
  });
}

TEST_CASE("statement effects: keywords and function names are case-insensitive") {
  check_cases({
      {"set X = 1", true},
      {"SeT x = 1", true},
      {"set local x = 1", false},
      {"Set Transaction Read Only", false},
      {"listen CH", false, kListen},
      {"Listen ch", false, kListen},
      {"Discard All", true, kNone, true, true},
      {"SELECT PG_ADVISORY_LOCK(1)", false, kAdvisory},
      {"select Set_Config('a', 'b', false)", true},
      {"create temp table t(x int)", false, kTemp},
      {"Create Temporary Table t(x int) On Commit Drop", false, kNone},
      {"declare c cursor with hold for select 1", false, kHold},
      {"prepare p as select 1", false, kPrepare},
      {"prepare transaction 'x'", false, kNone},
  });
}

// Each of these took session state without being noticed before (checked against PostgreSQL
// 15): the client could have moved to another server and lost it, or left it for the next one.
TEST_CASE("statement effects: less common spellings of session state still pin") {
  check_cases({
      // A quoted identifier names the same function when it has the same (lower-case) text.
      {"SELECT \"pg_advisory_lock\"(1)", false, kAdvisory},
      {"SELECT pg_catalog.\"pg_try_advisory_lock\"(1)", false, kAdvisory},
      {"SELECT \"set_config\"('a', 'b', false)", true},
      // SELECT INTO takes LOCAL/GLOBAL before TEMP, or a table in the temp schema.
      {"SELECT 1 AS a INTO LOCAL TEMP t", false, kTemp},
      {"SELECT 1 AS a INTO GLOBAL TEMPORARY t", false, kTemp},
      {"SELECT 1 AS a INTO pg_temp.t", false, kTemp},
      // Anything created in pg_temp is temporary.
      {"CREATE TABLE pg_temp.t (x int)", false, kTemp},
      {"CREATE FUNCTION pg_temp.f() RETURNS int AS 'SELECT 1' LANGUAGE sql", false, kTemp},
      {"CREATE TABLE pg_temp_3.t (x int)", false, kTemp},
      {"CREATE TABLE pg_temp.t (x int) ON COMMIT DROP", false, kNone},
      {"CREATE TABLE pg_temp_stats (x int)", false, kNone},
      {"CREATE TABLE \"PG_TEMP\".t (x int)", false, kNone},
      // EXPLAIN ANALYZE runs CREATE TABLE AS / SELECT INTO.
      {"EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1", false, kTemp},
      {"EXPLAIN (ANALYZE, BUFFERS) SELECT 1 INTO TEMP t", false, kTemp},
      {"EXPLAIN SELECT 1", false, kNone},
      // Dynamic SQL in a DO block can PREPARE a statement for the session.
      {"DO $$BEGIN EXECUTE 'PREPARE p AS SELECT 1'; END$$", false, kPrepare},
  });
}

// The scan errs towards "may have": these are reported although they have no session effect.
// They cost an extra catalog query or an unneeded pin, never a leak; a sharper lexer may
// change them.
TEST_CASE("statement effects: accepted false positives") {
  check_cases({
      // A dollar-quoted string literal is scanned as if it were code.
      {"SELECT $$SET x = 1$$", true},
      {"SELECT $$listen$$", false, kListen},
      // Defining a function whose body would take a lock is not taking it.
      {"CREATE FUNCTION f() RETURNS void AS $$ SELECT pg_advisory_lock(1) $$ LANGUAGE sql", false,
       kAdvisory},
      // UPDATE ... SET inside a DO body.
      {"DO $$BEGIN UPDATE t SET x = 1; END$$", true},
      // set_config(..., true) is transaction-local.
      {"SELECT set_config('search_path', 'a', true)", true},
      // A column that happens to carry a function's name.
      {"SELECT \"pg_advisory_lock\" FROM t", false, kAdvisory},
      // Releases are reported for any DROP/CLOSE, whatever they drop.
      {"DROP TABLE normal_table", false, kNone, true},
  });
}

TEST_CASE("statement effects: long queries past the scan's stack arena are scanned whole") {
  // Words are kept on the stack up to a few kilobytes; beyond, the scan goes on on the heap.
  std::string columns;
  for (int i = 0; i < 2000; ++i) columns += (i ? ", c" : "c") + std::to_string(i);
  check_cases({
      {"SELECT " + columns + " INTO TEMP t FROM wide", false, kTemp},
      {"SELECT " + columns + " FROM wide", false, kNone},
  });
  std::string many;
  for (int i = 0; i < 500; ++i) many += "SELECT " + std::to_string(i) + ";";
  check_cases({{many + "LISTEN late", false, kListen}, {many + "SET x = 1", true, kNone}});
}

TEST_CASE("pin reasons have readable names") {
  CHECK(std::string(to_string(PinReason::none)) == "none");
  CHECK(std::string(to_string(PinReason::listen)) == "LISTEN");
  CHECK(std::string(to_string(PinReason::advisory_lock)) == "session advisory lock");
  CHECK(std::string(to_string(PinReason::temp_table)) == "temporary table");
  CHECK(std::string(to_string(PinReason::hold_cursor)) == "cursor WITH HOLD");
  CHECK(std::string(to_string(PinReason::sql_prepare)) == "SQL PREPARE");
}

TEST_CASE("statement effects: which settings changes may reset a setting to its default") {
  for (std::string_view sql :
       {"RESET ALL", "reset datestyle", "DISCARD ALL", "SELECT set_config('a.b', NULL, false)",
        "SET x = 1; RESET y", "DO $$BEGIN RESET work_mem; END$$"}) {
    INFO("sql: ", std::string(sql));
    const StatementEffects fx = scan_statement_effects(sql);
    CHECK(fx.changes_settings);
    CHECK(fx.may_reset_settings);
  }
  for (std::string_view sql : {"SET x = 1", "SET search_path = a, b", "SELECT 1",
                               "DO $$BEGIN SET work_mem = '1MB'; END$$"}) {
    INFO("sql: ", std::string(sql));
    CHECK_FALSE(scan_statement_effects(sql).may_reset_settings);
  }
}

TEST_CASE("statement effects: the one-pass shortcut takes the common statements, and only them") {
  // What pgbench and ORMs send by the thousand: no lexer needed.
  for (std::string_view sql : {
           "SELECT abalance FROM pgbench_accounts WHERE aid = 1234;",
           "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
           "UPDATE pgbench_accounts SET abalance = abalance + -7 WHERE aid = 5;",
           "INSERT INTO pgbench_history (tid, bid) VALUES (1, 2)",
           "  begin",
           "END;  \n",
           "COMMIT",
           "rollback",
           "SELECT 1 -- ;",
           "with t as (select 1) select * from t",
       }) {
    INFO("sql: ", std::string(sql));
    CHECK(detail::surely_without_effects(sql));
    CHECK(no_effects(detail::lex_statement_effects(sql)));
  }
  // Anything that might matter goes to the lexer, which decides (some of these have no effect
  // at all: the shortcut only has to be sure when it says yes).
  for (std::string_view sql : {
           "SELECT pg_advisory_lock(1)",
           "select PG_TRY_ADVISORY_LOCK(1)",
           "SELECT \"pg_advisory_lock\"(1)",
           "SELECT set_config('a.b', '1', false)",
           "SELECT * INTO TEMP t FROM x",
           "select 1 into pg_temp.t",
           "SELECT 1; SET x = 1",
           "SELECT 1; LISTEN c",
           "SELECT $$ LISTEN c $$",
           "SELECT $a$ x $a$",
           "SELECT 1 $",
           "/* c */ SET x = 1",
           "-- c\nLISTEN c",
           "(SELECT 1)",
           "\"select\" 1",
           "SET x = 1",
           "LISTEN c",
           "DISCARD ALL",
           "CREATE TEMP TABLE t (a int)",
           "DECLARE c CURSOR WITH HOLD",
           "PREPARE p AS SELECT 1",
           "DEALLOCATE p",
           "EXPLAIN ANALYZE SELECT 1 INTO TEMP t",
           "selectx 1",
           "SELECT 'x;' || $2",
           "UPDATE t SET a = 1; SELECT pg_sleep(1)",
           "",
           "   ",
       }) {
    INFO("sql: ", std::string(sql));
    CHECK_FALSE(detail::surely_without_effects(sql));
  }
}

TEST_CASE("statement effects: the shortcut finds what matters at every offset of a long query") {
  // The scan passes sixteen bytes per step: each telling fragment is tried at every position
  // across three such blocks, so a hit in any lane, and in the bytes after the last whole
  // block, is seen.
  for (std::string_view fragment : {"; SET x = 1", " pg_advisory_lock(1)", " set_config('a', 'b')",
                                    " $$ SET $$", " INTO TEMP t"}) {
    for (std::size_t pad = 0; pad < 48; ++pad) {
      const std::string sql =
          "SELECT abalance FROM t" + std::string(pad, 'a') + std::string(fragment);
      INFO("sql: ", sql);
      CHECK_FALSE(detail::surely_without_effects(sql));
    }
  }
  for (std::size_t pad = 0; pad < 48; ++pad) {
    const std::string sql = "SELECT abalance FROM t" + std::string(pad, 'b') + " WHERE aid = 1;  ";
    INFO("sql: ", sql);
    CHECK(detail::surely_without_effects(sql));
  }
}
