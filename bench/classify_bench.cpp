// Cost of statement classification: ns per statement parsed with libpg_query (a cache miss)
// and per cache hit (what every repeated statement costs on the hot path).
//   build/bench/pgmux_classify_bench [ITERATIONS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "router/classification_cache.hpp"
#include "router/classifier.hpp"

using namespace pgmux::router;

namespace {

const std::vector<std::string> kStatements = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "SELECT u.id, u.email, p.title FROM users u JOIN posts p ON p.user_id = u.id "
    "WHERE u.id = $1 AND p.published ORDER BY p.created_at DESC LIMIT 20",
    "INSERT INTO events (kind, payload, created_at) VALUES ($1, $2, now()) RETURNING id",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') "
    "SELECT customer_id, count(*), sum(total) FROM recent GROUP BY customer_id",
    "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
    "BEGIN",
    "SELECT nextval('orders_id_seq')",
};

double ns_per(std::chrono::steady_clock::duration d, long n) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) /
         static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 20000;
  FunctionCatalog catalog;
  catalog.set_side_effect_free({"now", "count", "sum"});
  long sink = 0;

  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    sink += static_cast<long>(classify(kStatements[i % kStatements.size()], catalog).kind);
  }
  const double uncached = ns_per(std::chrono::steady_clock::now() - t0, iterations);

  ClassificationCache cache;
  for (const auto& s : kStatements) sink += static_cast<long>(cache.get(s, catalog, 1).kind);
  const long hits = iterations * 50;
  t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < hits; ++i) {
    sink += static_cast<long>(cache.get(kStatements[i % kStatements.size()], catalog, 1).kind);
  }
  const double cached = ns_per(std::chrono::steady_clock::now() - t0, hits);

  std::printf("classification of %zu typical statements (checksum %ld):\n", kStatements.size(),
              sink);
  std::printf("  uncached (libpg_query parse + walk): %8.0f ns per statement (%ld runs)\n",
              uncached, iterations);
  // Simple-protocol clients inline their values: every text differs, the key does not.
  std::string inlined;
  t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < hits; ++i) {
    inlined = "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i % 100000);
    sink += static_cast<long>(cache.get(inlined, catalog, 1).kind);
  }
  const double cached_inlined = ns_per(std::chrono::steady_clock::now() - t0, hits);
  std::printf("  cached (hit by literal-free key):    %8.1f ns per statement (%ld runs)\n", cached,
              hits);
  std::printf("  cached, values inlined (pgbench -S): %8.1f ns per statement (%ld runs)\n",
              cached_inlined, hits);
  return 0;
}
