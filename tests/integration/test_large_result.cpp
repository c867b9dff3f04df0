// A ~130 MB result streams through pgmux without being buffered.
#include <doctest/doctest.h>

#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("a 1,000,000-row result arrives complete and pgmux's peak RSS grows by < 32 MB") {
  PgmuxProcess px(test_env(), {.name = "large"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT 1") == "1");  // the server connection exists and is warm

  const long before_kb = px.peak_rss_kb();
  REQUIRE(before_kb > 0);

  REQUIRE(PQsendQuery(c.get(), "SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g") ==
          1);
  REQUIRE(PQsetSingleRowMode(c.get()) == 1);  // keep the client's own memory flat
  long long rows = 0, sum = 0;
  bool payload_ok = true;
  for (;;) {
    const PgResult r = c.next_result();
    if (!r) break;
    if (r.status() == PGRES_SINGLE_TUPLE) {
      ++rows;
      sum += std::stoll(r.value(0, 0));
      payload_ok = payload_ok && PQgetlength(r.get(), 0, 1) == 100;
    } else {
      CHECK_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());  // the final, empty result
      CHECK(r.rows() == 0);
    }
  }
  const long after_kb = px.peak_rss_kb();
  CHECK(rows == 1000000);
  CHECK(sum == 500000500000LL);
  CHECK(payload_ok);
  MESSAGE("pgmux VmHWM before ", before_kb, " kB, after ", after_kb, " kB");
  CHECK(after_kb - before_kb < 32 * 1024);
  CHECK(c.query_value("SELECT 'after the big one'") == "after the big one");
}
