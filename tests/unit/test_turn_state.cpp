// The per-worker free list of active-session state: what is lent is counted, what comes back
// is emptied (and gives back capacity a large frame made it grow), and the list is bounded.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pooler/session/turn_state.hpp"

using namespace pgmux::pooler;

TEST_CASE("TurnStatePool lends, takes back emptied blocks and reuses them") {
  asio::io_context io{1};
  TurnStatePool& pool = TurnStatePool::of(io.get_executor());
  CHECK(&pool == &TurnStatePool::of(io.get_executor()));  // one per event loop
  auto a = pool.take(io.get_executor());
  CHECK(pool.lent() == 1);
  CHECK(pool.free() == 0);
  a->out = "some reply";
  a->scratch.assign(100 * 1024, 'x');  // grown for one large Bind
  a->server_failure.emplace("08006", "lost");
  CHECK(a->expect.client_frame('Q'));
  TurnState* const block = a.get();
  pool.give(std::move(a));
  CHECK(pool.lent() == 0);
  CHECK(pool.free() == 1);

  auto b = pool.take(io.get_executor());
  CHECK(b.get() == block);  // reused, not allocated again
  CHECK(b->out.empty());
  CHECK(b->scratch.empty());
  CHECK(b->scratch.capacity() < 100 * 1024);
  CHECK_FALSE(b->server_failure);
  CHECK(b->expect.empty());
  pool.give(std::move(b));
}

TEST_CASE("TurnStatePool keeps at most kMaxFree blocks after a burst") {
  asio::io_context io{1};
  TurnStatePool& pool = TurnStatePool::of(io.get_executor());
  std::vector<std::unique_ptr<TurnState>> burst;
  for (std::size_t i = 0; i < TurnStatePool::kMaxFree + 20; ++i) {
    burst.push_back(pool.take(io.get_executor()));
  }
  CHECK(pool.lent() == TurnStatePool::kMaxFree + 20);
  for (auto& s : burst) pool.give(std::move(s));
  CHECK(pool.lent() == 0);
  CHECK(pool.free() == TurnStatePool::kMaxFree);
}
