// The read/write classifier, table-driven: a statement is a read only when it positively is.
#include <doctest/doctest.h>

#include "router/classification_cache.hpp"
#include "router/classifier.hpp"
#include "router/statement_key.hpp"

using namespace pgmux::router;

namespace {

using K = StatementKind;

struct Case {
  const char* sql;
  K kind;
};

// A catalog as pgmux reads it from pg_proc, plus a user function declared volatile
// (audit_log) and one declared stable (current_tenant).
FunctionCatalog loaded_catalog() {
  FunctionCatalog c({"my_writer"}, {"harmless_volatile"});
  NameSet safe = {"count",
                  "sum",
                  "avg",
                  "lower",
                  "upper",
                  "now",
                  "length",
                  "abs",
                  "coalesce",
                  "generate_series",
                  "current_tenant",
                  "pg_is_in_recovery",
                  "inet_server_port",
                  "pg_backend_pid",
                  "jsonb_build_object",
                  "to_char",
                  "date_trunc",
                  "array_agg",
                  "row_number",
                  "pg_sleep_for_test",
                  "my_writer",
                  "version",
                  "current_setting",
                  "string_agg",
                  "max",
                  "min",
                  "unnest"};
  c.set_side_effect_free(std::move(safe));
  return c;
}

const Case kCases[] = {
    // Plain reads and their spellings.
    {"SELECT 1", K::read},
    {"select 1", K::read},
    {"SeLeCt 1", K::read},
    {"  \n\tSELECT 1  ", K::read},
    {"SELECT 1;", K::read},
    {"SELECT * FROM accounts WHERE id = $1", K::read},
    {"SELECT a, b FROM t1 JOIN t2 USING (id) WHERE x > 3 ORDER BY a LIMIT 10", K::read},
    {"SELECT count(*) FROM t", K::read},
    {"SELECT sum(x), avg(y) FROM t GROUP BY z HAVING count(*) > 1", K::read},
    {"SELECT DISTINCT ON (a) a, b FROM t", K::read},
    {"SELECT * FROM t WHERE id IN (SELECT id FROM u)", K::read},
    {"SELECT EXISTS (SELECT 1 FROM t)", K::read},
    {"SELECT * FROM t UNION SELECT * FROM u", K::read},
    {"SELECT * FROM t INTERSECT SELECT * FROM u", K::read},
    {"SELECT * FROM t EXCEPT ALL SELECT * FROM u", K::read},
    {"VALUES (1, 2), (3, 4)", K::read},
    {"TABLE accounts", K::read},
    {"SHOW search_path", K::read},
    {"SHOW ALL", K::read},
    {"SELECT now()", K::read},
    {"SELECT lower(name) FROM users", K::read},
    {"SELECT row_number() OVER (ORDER BY id) FROM t", K::read},
    {"SELECT * FROM generate_series(1, 10)", K::read},
    {"SELECT * FROM unnest(ARRAY[1,2,3])", K::read},
    {"SELECT jsonb_build_object('a', 1)", K::read},
    {"SELECT current_tenant()", K::read},
    {"SELECT public.current_tenant()", K::read},
    {"SELECT pg_is_in_recovery(), inet_server_port()", K::read},
    {"SELECT $1::int + $2::int", K::read},
    {"SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t", K::read},
    {"SELECT coalesce(a, b) FROM t", K::read},
    {"SELECT a FROM t WHERE b LIKE 'x%'", K::read},
    {"SELECT * FROM t FETCH FIRST 5 ROWS ONLY", K::read},
    {"SELECT * FROM t TABLESAMPLE SYSTEM (10)", K::read},
    {"SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.id = t.id) s", K::read},
    {"SELECT x FROM t WINDOW w AS (PARTITION BY y)", K::read},
    {"SELECT harmless_volatile()", K::read},  // listed in read_functions
    // Quoting, comments and dollar quotes do not confuse it.
    {"SELECT 'INSERT INTO t VALUES (1)'", K::read},
    {"SELECT 'nextval(''s'')'", K::read},
    {"SELECT \"update\" FROM t", K::read},
    {"SELECT $$DELETE FROM t$$", K::read},
    {"SELECT $tag$ FOR UPDATE $tag$", K::read},
    {"SELECT 1 -- DELETE FROM t", K::read},
    {"/* DROP TABLE t */ SELECT 1", K::read},
    {"SELECT /* FOR UPDATE */ 1", K::read},
    {"SELECT E'\\' ; DELETE FROM t; --'", K::read},
    {"SELECT 'a;b'", K::read},
    {"select \"Select\" from \"Insert\"", K::read},
    // CTEs.
    {"WITH x AS (SELECT 1) SELECT * FROM x", K::read},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
     K::read},
    {"WITH x AS MATERIALIZED (SELECT * FROM t) SELECT count(*) FROM x", K::read},
    {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", K::write},
    {"WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", K::write},
    {"WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", K::write},
    {"WITH x AS (SELECT 1), d AS (DELETE FROM t) SELECT * FROM x", K::write},
    {"WITH x AS (SELECT nextval('s')) SELECT * FROM x", K::write},
    {"WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x", K::write},
    // Locking reads.
    {"SELECT * FROM t FOR UPDATE", K::write},
    {"SELECT * FROM t FOR NO KEY UPDATE", K::write},
    {"SELECT * FROM t FOR SHARE", K::write},
    {"SELECT * FROM t FOR KEY SHARE", K::write},
    {"SELECT * FROM t FOR UPDATE SKIP LOCKED", K::write},
    {"SELECT * FROM t FOR UPDATE NOWAIT", K::write},
    {"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", K::write},
    {"select * from t for update of t", K::write},
    // SELECT INTO creates a table.
    {"SELECT * INTO newtable FROM t", K::write},
    {"SELECT 1 AS a INTO TEMP tmp", K::write},
    // Side-effecting and volatile functions.
    {"SELECT nextval('s')", K::write},
    {"SELECT NEXTVAL('s')", K::write},
    {"SELECT pg_catalog.nextval('s')", K::write},
    {"SELECT setval('s', 10)", K::write},
    {"SELECT currval('s')", K::write},
    {"SELECT lastval()", K::write},
    {"SELECT pg_advisory_lock(1)", K::write},
    {"SELECT pg_advisory_xact_lock(1)", K::write},
    {"SELECT pg_try_advisory_lock(1)", K::write},
    {"SELECT pg_advisory_unlock(1)", K::write},
    {"SELECT pg_advisory_lock_shared(1)", K::write},
    {"SELECT pg_notify('c', 'x')", K::write},
    {"SELECT set_config('a.b', 'c', false)", K::write},
    {"SELECT txid_current()", K::write},
    {"SELECT pg_current_xact_id()", K::write},
    {"SELECT lo_create(0)", K::write},
    {"SELECT lo_unlink(123)", K::write},
    {"SELECT dblink_exec('x', 'y')", K::write},
    {"SELECT audit_log('x')", K::write},  // user function, volatile: not in the catalog
    {"SELECT public.audit_log('x')", K::write},
    {"SELECT my_writer()", K::write},                 // listed in write_functions
    {"SELECT pg_current_wal_lsn()", K::write},        // volatile built-in; fails on a standby
    {"SELECT random(), clock_timestamp()", K::read},  // volatile without side effects
    {"SELECT pg_is_in_recovery()", K::read},
    {"SELECT * FROM t WHERE id = nextval('s')", K::write},
    {"SELECT (SELECT nextval('s'))", K::write},
    {"SELECT count(*) FROM t WHERE x = ANY (ARRAY[nextval('s')])", K::write},
    {"SELECT * FROM t ORDER BY audit_log(t.x)", K::write},
    {"SELECT id FROM t GROUP BY id HAVING max(audit_log(x)) > 0", K::write},
    {"SELECT CASE WHEN true THEN nextval('s') END", K::write},
    {"SELECT * FROM audit_log('x')", K::write},
    {"VALUES (nextval('s'))", K::write},
    // DML, DDL and everything else.
    {"INSERT INTO t VALUES (1)", K::write},
    {"insert into t select * from u", K::write},
    {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", K::write},
    {"INSERT INTO t VALUES (1) RETURNING id", K::write},
    {"UPDATE t SET a = 1", K::write},
    {"UPDATE t SET a = 1 WHERE id = $1 RETURNING a", K::write},
    {"DELETE FROM t", K::write},
    {"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", K::write},
    {"TRUNCATE t", K::write},
    {"CREATE TABLE t (id int)", K::write},
    {"CREATE TEMP TABLE t (id int)", K::write},
    {"CREATE TABLE t AS SELECT 1", K::write},
    {"CREATE INDEX ON t (a)", K::write},
    {"CREATE MATERIALIZED VIEW m AS SELECT 1", K::write},
    {"REFRESH MATERIALIZED VIEW m", K::write},
    {"ALTER TABLE t ADD COLUMN b int", K::write},
    {"DROP TABLE t", K::write},
    {"GRANT SELECT ON t TO app", K::write},
    {"VACUUM t", K::write},
    {"ANALYZE t", K::write},
    {"CLUSTER t", K::write},
    {"REINDEX TABLE t", K::write},
    {"COMMENT ON TABLE t IS 'x'", K::write},
    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", K::write},
    {"LISTEN channel", K::write},
    {"NOTIFY channel", K::write},
    {"UNLISTEN *", K::write},
    {"CALL proc()", K::write},
    {"DO $$BEGIN PERFORM 1; END$$", K::write},
    {"PREPARE p AS SELECT 1", K::write},
    {"EXECUTE p", K::write},
    {"DECLARE c CURSOR FOR SELECT 1", K::write},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", K::write},
    {"FETCH 10 FROM c", K::write},
    {"CHECKPOINT", K::write},
    {"COPY t FROM STDIN", K::write},
    {"COPY t FROM PROGRAM 'cat'", K::write},
    {"PREPARE TRANSACTION 'x'", K::write},
    {"COMMIT PREPARED 'x'", K::write},
    // COPY out.
    {"COPY t TO STDOUT", K::read},
    {"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", K::read},
    {"COPY (SELECT nextval('s')) TO STDOUT", K::write},
    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", K::write},
    // EXPLAIN: executed only with ANALYZE.
    {"EXPLAIN SELECT * FROM t", K::read},
    {"EXPLAIN INSERT INTO t VALUES (1)", K::read},
    {"EXPLAIN (COSTS OFF) DELETE FROM t", K::read},
    {"EXPLAIN ANALYZE SELECT * FROM t", K::read},
    {"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", K::write},
    {"EXPLAIN (ANALYZE) UPDATE t SET a = 1", K::write},
    {"EXPLAIN (ANALYZE true, BUFFERS) DELETE FROM t", K::write},
    {"EXPLAIN (ANALYZE false) DELETE FROM t", K::read},
    {"EXPLAIN ANALYZE SELECT nextval('s')", K::write},
    {"EXPLAIN (ANALYZE on) SELECT * FROM t FOR UPDATE", K::write},
    // Transactions.
    {"BEGIN", K::begin_read_write},
    {"begin", K::begin_read_write},
    {"BEGIN TRANSACTION", K::begin_read_write},
    {"BEGIN WORK", K::begin_read_write},
    {"START TRANSACTION", K::begin_read_write},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE", K::begin_read_write},
    {"BEGIN READ WRITE", K::begin_read_write},
    {"BEGIN READ ONLY", K::begin_read_only},
    {"begin read only", K::begin_read_only},
    {"START TRANSACTION READ ONLY", K::begin_read_only},
    {"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", K::begin_read_only},
    {"BEGIN READ ONLY DEFERRABLE", K::begin_read_only},
    {"BEGIN; SET TRANSACTION READ ONLY", K::begin_read_only},
    {"BEGIN; SELECT 1; COMMIT", K::begin_read_write},
    {"BEGIN READ ONLY; SELECT * FROM t; COMMIT", K::begin_read_only},
    {"BEGIN READ ONLY; INSERT INTO t VALUES (1)", K::write},
    {"SET TRANSACTION READ ONLY", K::begin_read_only},
    {"COMMIT", K::transaction_end},
    {"END", K::transaction_end},
    {"ROLLBACK", K::transaction_end},
    {"ABORT", K::transaction_end},
    {"SAVEPOINT a", K::transaction_end},
    {"RELEASE SAVEPOINT a", K::transaction_end},
    {"ROLLBACK TO SAVEPOINT a", K::transaction_end},
    // Session statements.
    {"SET search_path = app, public", K::session},
    {"SET LOCAL statement_timeout = '1s'", K::session},
    {"SET TIME ZONE 'UTC'", K::session},
    {"RESET ALL", K::session},
    {"RESET work_mem", K::session},
    {"DISCARD ALL", K::session},
    {"DEALLOCATE ALL", K::session},
    {"DEALLOCATE p", K::session},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", K::session},
    {"SET default_transaction_read_only = on", K::session},
    {"SET pgmux.target = 'primary'", K::set_target},
    {"set PGMUX.TARGET to replica", K::set_target},
    {"RESET pgmux.target", K::set_target},
    // Several statements: the strictest wins.
    {"SELECT 1; SELECT 2", K::read},
    {"SELECT 1; INSERT INTO t VALUES (1)", K::write},
    {"INSERT INTO t VALUES (1); SELECT 1", K::write},
    {"SET search_path = a; SELECT * FROM t", K::read},
    {"SELECT 1; SELECT nextval('s')", K::write},
    {"SHOW x; SELECT 1", K::read},
    {"SET pgmux.target = 'primary'; SELECT 1", K::write},
    // Empty, unparsable, unknown: a write (except the empty query, which does nothing).
    {"", K::transaction_end},
    {";", K::transaction_end},
    {"-- only a comment", K::transaction_end},
    {"SELEC 1", K::write},
    {"SELECT * FROM", K::write},
    {"SELECT 'unterminated", K::write},
    {"SELECT $$unterminated", K::write},
    {"garbage in", K::write},
    {"SELECT 1; garbage", K::write},
};

}  // namespace

TEST_CASE("classifier: table of statements") {
  const FunctionCatalog catalog = loaded_catalog();
  CHECK(std::size(kCases) >= 150);
  for (const Case& c : kCases) {
    const std::string sql = c.sql;
    CAPTURE(sql);
    const Classification got = classify(c.sql, catalog);
    CHECK_MESSAGE(got.kind == c.kind, "got ", to_string(got.kind), " ", got.error);
  }
}

TEST_CASE("classifier: unparsable input says why") {
  const Classification c = classify("SELEC 1", FunctionCatalog{});
  CHECK(c.kind == K::write);
  CHECK(c.error.find("syntax error") != std::string::npos);
}

TEST_CASE("classifier: before pg_proc is read, unknown functions are writes, common ones reads") {
  const FunctionCatalog fresh;
  CHECK_FALSE(fresh.loaded());
  CHECK(classify("SELECT count(*) FROM t", fresh).kind == K::read);
  CHECK(classify("SELECT now()", fresh).kind == K::read);
  CHECK(classify("SELECT current_tenant()", fresh).kind == K::write);
  CHECK(classify("SELECT * FROM t WHERE a = $1", fresh).kind == K::read);
  CHECK(classify("SELECT nextval('s')", fresh).kind == K::write);
}

TEST_CASE("classifier: hints and pgmux.target values") {
  const FunctionCatalog cat = loaded_catalog();
  CHECK(leading_hint("/* pgmux:primary */ SELECT 1") == Hint::primary);
  CHECK(leading_hint("  /*pgmux:replica*/SELECT 1") == Hint::replica);
  CHECK(leading_hint("/* pgmux:other */ SELECT 1") == Hint::none);
  CHECK(leading_hint("SELECT 1 /* pgmux:primary */") == Hint::none);
  CHECK(leading_hint("/* pgmux:primary") == Hint::none);
  const Classification h = classify("/* pgmux:replica */ SELECT nextval('s')", cat);
  CHECK(h.kind == K::write);
  CHECK(h.hint == Hint::replica);
  CHECK(classify("SET pgmux.target = 'Replica'", cat).target_value == "replica");
  CHECK(classify("SET pgmux.target TO 'primary'", cat).target_value == "primary");
  CHECK(classify("SET pgmux.target = replica", cat).target_value == "replica");
  CHECK(classify("RESET pgmux.target", cat).target_value.empty());
  CHECK(classify("SET pgmux.target TO DEFAULT", cat).target_value.empty());
  const Classification lsn = classify("SET pgmux.min_lsn = '0/16B3748'", cat);
  CHECK(lsn.kind == K::set_target);
  CHECK(lsn.setting_name == "pgmux.min_lsn");
  CHECK(lsn.target_value == "0/16b3748");
}

TEST_CASE("classification cache: hits, LRU bound, cleared by a new catalog") {
  const FunctionCatalog cat = loaded_catalog();
  ClassificationCache cache(2);
  CHECK(cache.get("SELECT a FROM t", cat, 1).kind == K::read);
  CHECK(cache.get("SELECT a FROM t", cat, 1).kind == K::read);
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 1);
  CHECK(cache.get("INSERT INTO t VALUES (1)", cat, 1).kind == K::write);
  CHECK(cache.get("SELECT a FROM t", cat, 1).kind == K::read);  // refreshes it
  CHECK(cache.get("SELECT b FROM t", cat, 1).kind == K::read);  // evicts the INSERT
  CHECK(cache.size() == 2);
  const auto misses = cache.misses();
  CHECK(cache.get("SELECT a FROM t", cat, 1).kind == K::read);
  CHECK(cache.misses() == misses);
  CHECK(cache.get("INSERT INTO t VALUES (1)", cat, 1).kind == K::write);
  CHECK(cache.misses() == misses + 1);
  CHECK(cache.get("SELECT a FROM t", cat, 2).kind == K::read);  // new catalog generation
  CHECK(cache.size() == 1);
}

TEST_CASE("statement keys strip literal values and nothing else") {
  std::string k;
  auto key = [&](std::string_view sql) {
    statement_key(sql, k);
    std::string shown = k;
    for (char& c : shown) {
      if (c == '\x01') c = '?';
    }
    return shown;
  };
  CHECK(key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;") ==
        "SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
  CHECK(key("SELECT * FROM t WHERE a = 'x''y' AND b = 1.5e-3 AND c = .5") ==
        "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?");
  CHECK(key("SELECT E'a\\'b', $$x'y$$, $fn$ ; $fn$") == "SELECT E?, ?, ?");
  CHECK(key("SELECT t1.c2, \"it's\" FROM t1 WHERE x = $1") ==
        "SELECT t1.c2, \"it's\" FROM t1 WHERE x = $1");
  CHECK(key("/* pgmux:replica */ SELECT 1 -- 'not a literal'") ==
        "/* pgmux:replica */ SELECT ? -- 'not a literal'");
  CHECK(key("SELECT data ? 'k' FROM j") == "SELECT data ? ? FROM j");
  // Kept whole: where a literal can change the meaning, or the text cannot be followed.
  CHECK(key("SET pgmux.target = 'replica'") == "SET pgmux.target = 'replica'");
  CHECK(key("  reset pgmux.target") == "  reset pgmux.target");
  CHECK(key("EXPLAIN (ANALYZE 0) DELETE FROM t") == "EXPLAIN (ANALYZE 0) DELETE FROM t");
  CHECK(key("SELECT 'unterminated") == "SELECT 'unterminated");
  CHECK(key("SELECT $$unterminated") == "SELECT $$unterminated");
  CHECK(key("SELECT 1 /* open") == "SELECT 1 /* open");
}

TEST_CASE("classification cache: statements differing only in literals share an entry") {
  const FunctionCatalog cat = loaded_catalog();
  ClassificationCache cache;
  CHECK(cache.get("SELECT * FROM t WHERE id = 1", cat, 1).kind == K::read);
  CHECK(cache.get("SELECT * FROM t WHERE id = 2", cat, 1).kind == K::read);
  CHECK(cache.get("SELECT * FROM t WHERE id = 'three'", cat, 1).kind == K::read);
  CHECK(cache.misses() == 1);
  CHECK(cache.hits() == 2);
  CHECK(cache.get("SELECT * FROM t WHERE id = 1 FOR UPDATE", cat, 1).kind == K::write);
  CHECK(cache.get("SELECT 'unterminated", cat, 1).kind == K::write);
  CHECK(cache.get("SELECT 'terminated'", cat, 1).kind == K::read);
  CHECK(cache.get("SET pgmux.target = 'primary'", cat, 1).target_value == "primary");
  CHECK(cache.get("SET pgmux.target = 'replica'", cat, 1).target_value == "replica");
  cache.mark_write("SELECT * FROM t WHERE id = 99");
  CHECK(cache.get("SELECT * FROM t WHERE id = 1", cat, 1).kind == K::write);
}
