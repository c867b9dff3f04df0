// Cancel keys: issued unique, resolved only with the right secret while the client holds a
// server, and a dormant client's entry reduced to its key.
#include <doctest/doctest.h>

#include <set>

#include "pooler/cancel_registry.hpp"

using namespace pgmux::pooler;

TEST_CASE("a cancel resolves to the client's server only while it holds one") {
  CancelRegistry registry;
  const CancelKey key = registry.register_client();
  CHECK(key.pid > 0);
  CHECK_FALSE(registry.resolve(key).has_value());  // no server yet

  const Endpoint server{.host = "db-primary.internal.example.com", .port = 5433};
  registry.set_target(key.pid, server, 4242, 777);
  auto target = registry.resolve(key);
  REQUIRE(target.has_value());
  CHECK(target->endpoint.host == server.host);
  CHECK(target->endpoint.port == 5433);
  CHECK(target->server_pid == 4242);
  CHECK(target->server_secret == 777);
  CHECK_FALSE(registry.resolve({key.pid, key.secret ^ 1}).has_value());  // wrong secret

  registry.clear_target(key.pid);
  CHECK_FALSE(registry.resolve(key).has_value());
  // The next lease reuses the entry's block.
  registry.set_target(key.pid, Endpoint{.host = "replica", .port = 5434}, 5, 6);
  REQUIRE(registry.resolve(key).has_value());
  CHECK(registry.resolve(key)->endpoint.host == "replica");

  registry.drop_target(key.pid);  // dormant: the key stays, its cancels are dropped
  CHECK_FALSE(registry.resolve(key).has_value());
  registry.set_target(key.pid, server, 8, 9);
  CHECK(registry.resolve(key)->server_pid == 8);

  registry.unregister_client(key.pid);
  CHECK_FALSE(registry.resolve(key).has_value());
  registry.set_target(key.pid, server, 1, 2);  // a late lease of a gone client: ignored
  CHECK_FALSE(registry.resolve(key).has_value());
}

TEST_CASE("cancel keys are unique") {
  CancelRegistry registry;
  std::set<std::int32_t> pids;
  for (int i = 0; i < 1000; ++i) pids.insert(registry.register_client().pid);
  CHECK(pids.size() == 1000);
}
