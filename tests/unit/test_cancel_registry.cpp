// Cancel keys: issued unique, resolved only with the right secret while the client holds a
// server, and a dormant client's entry reduced to its key.
#include <doctest/doctest.h>

#include <cstdlib>
#include <set>
#include <vector>

#include "pooler/pool/cancel_registry.hpp"

using namespace pgmux::pooler;

TEST_CASE("a cancel resolves to the client's server only while it holds one") {
  CancelRegistry registry;
  const CancelKey key = registry.register_client();
  CHECK(key.pid > 0);
  CHECK(registry.resolve(key).miss == CancelRegistry::Miss::idle);  // no server yet

  const Endpoint server{.host = "db-primary.internal.example.com", .port = 5433};
  registry.set_target(key.pid, server, 4242, 777);
  auto target = registry.resolve(key).target;
  REQUIRE(target.has_value());
  CHECK(target->endpoint.host == server.host);
  CHECK(target->endpoint.port == 5433);
  CHECK(target->server_pid == 4242);
  CHECK(target->server_secret == 777);
  CHECK(registry.resolve({key.pid, key.secret ^ 1}).miss == CancelRegistry::Miss::wrong_secret);
  CHECK_FALSE(registry.resolve({key.pid, key.secret ^ 1}).target.has_value());

  registry.clear_target(key.pid);
  CHECK_FALSE(registry.resolve(key).target.has_value());
  // The next lease reuses the entry's block.
  registry.set_target(key.pid, Endpoint{.host = "replica", .port = 5434}, 5, 6);
  REQUIRE(registry.resolve(key).target.has_value());
  CHECK(registry.resolve(key).target->endpoint.host == "replica");

  registry.drop_target(key.pid);  // dormant: the key stays, its cancels are dropped
  CHECK_FALSE(registry.resolve(key).target.has_value());
  registry.set_target(key.pid, server, 8, 9);
  CHECK(registry.resolve(key).target->server_pid == 8);

  registry.unregister_client(key.pid);
  CHECK(registry.resolve(key).miss == CancelRegistry::Miss::unknown_key);
  registry.set_target(key.pid, server, 1, 2);  // a late lease of a gone client: ignored
  CHECK_FALSE(registry.resolve(key).target.has_value());
}

TEST_CASE("a cancel resolved during one lease is not delivered in the next") {
  CancelRegistry registry;
  const CancelKey key = registry.register_client();
  const Endpoint server{.host = "127.0.0.1", .port = 5432};
  registry.set_target(key.pid, server, 100, 1);
  const auto first = registry.resolve(key);
  REQUIRE(first.target.has_value());
  CHECK(registry.still_leased(key.pid, first.lease));
  // The transaction ends while the cancel is on its way; the client leases the same backend
  // again for its next transaction: the old cancel is still refused.
  registry.clear_target(key.pid);
  CHECK_FALSE(registry.still_leased(key.pid, first.lease));
  registry.set_target(key.pid, server, 100, 1);
  CHECK_FALSE(registry.still_leased(key.pid, first.lease));
  const auto second = registry.resolve(key);
  CHECK(second.lease != first.lease);
  CHECK(registry.still_leased(key.pid, second.lease));
  registry.drop_target(key.pid);
  CHECK_FALSE(registry.still_leased(key.pid, second.lease));
  registry.unregister_client(key.pid);
  CHECK_FALSE(registry.still_leased(key.pid, second.lease));
}

TEST_CASE("a cancel key names its worker's shard, and shards keep their clients apart") {
  CancelRegistry registry;
  const Endpoint server{.host = "127.0.0.1", .port = 5432};
  std::vector<CancelKey> keys;
  for (int worker = 0; worker < 2 * CancelRegistry::kShards; ++worker) {
    const CancelKey k = registry.register_client(worker);
    CHECK(k.pid > 0);
    CHECK(CancelRegistry::shard_of(k.pid) == worker % CancelRegistry::kShards);
    registry.set_target(k.pid, server, 1000 + worker, worker);
    keys.push_back(k);
  }
  for (int worker = 0; worker < 2 * CancelRegistry::kShards; ++worker) {
    const auto found = registry.resolve(keys[static_cast<std::size_t>(worker)]);
    REQUIRE(found.target.has_value());
    CHECK(found.target->server_pid == 1000 + worker);
  }
  // A key whose shard bits were changed is another key: unknown, not another client's.
  const CancelKey moved{keys[0].pid ^ 1, keys[0].secret};
  CHECK(registry.resolve(moved).miss == CancelRegistry::Miss::unknown_key);
}

TEST_CASE("cancel keys are unique and random in both halves") {
  CancelRegistry registry;
  std::set<std::int32_t> pids;
  std::vector<std::int32_t> in_order;
  for (int i = 0; i < 1000; ++i) {
    const CancelKey k = registry.register_client();
    CHECK(k.pid > 0);
    pids.insert(k.pid);
    in_order.push_back(k.pid);
  }
  CHECK(pids.size() == 1000);
  // Not sequential: consecutive keys far apart (1000 random 31-bit values are never all
  // within a million of their predecessor).
  int close_steps = 0;
  for (std::size_t i = 1; i < in_order.size(); ++i) {
    if (std::abs(static_cast<long>(in_order[i]) - in_order[i - 1]) < 1000000) ++close_steps;
  }
  CHECK(close_steps < 10);
}

TEST_CASE("in a fleet a cancel key names its instance as well as its worker") {
  for (const int peer : {1, 7, 255}) {
    CancelRegistry registry(peer);
    CHECK(registry.peer_id() == peer);
    for (int worker = 0; worker < 20; ++worker) {
      const CancelKey k = registry.register_client(worker);
      CHECK(k.pid != 0);
      CHECK(CancelRegistry::peer_of(k.pid) == peer);
      CHECK(CancelRegistry::shard_of(k.pid) == worker % CancelRegistry::kShards);
      CHECK(registry.resolve(k).miss == CancelRegistry::Miss::idle);  // known, holds no server
    }
  }
  // Outside a fleet those bits stay random: 200 keys do not all carry one value there.
  CancelRegistry alone;
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) seen.insert(CancelRegistry::peer_of(alone.register_client().pid));
  CHECK(seen.size() > 100);
}
