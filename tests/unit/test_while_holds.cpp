// while_holds (net/asio_util.hpp), which gives up on a login to a replica that stops
// answering: the operation's own result or error when it ends first, ConditionEnded and the
// operation cancelled when the condition turns false first.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>

#include "pooler/net/asio_util.hpp"

using namespace pgmux::pooler;

namespace {

// Completes after `after` with `value`, or throws when `fail`; notes a cancellation.
awaitable<int> slow_value(Millis after, int value, bool fail, bool& cancelled) {
  Timer t(co_await asio::this_coro::executor, after);
  auto [ec] = co_await t.async_wait(as_result_awaitable);
  if (ec) {
    cancelled = true;
    throw std::runtime_error("cancelled");
  }
  if (fail) throw std::runtime_error("refused");
  co_return value;
}

// Runs `op` to its end on a fresh loop; the outcome as text.
template <class Op>
std::string outcome_of(Op op) {
  asio::io_context io;
  std::string out = "unfinished";
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        try {
          out = std::to_string(co_await op());
        } catch (const ConditionEnded&) {
          out = "ended";
        } catch (const std::exception& e) {
          out = e.what();
        }
      },
      asio::detached);
  io.run_for(std::chrono::seconds(5));
  return out;
}

}  // namespace

TEST_CASE("while_holds: the operation's value while the condition holds") {
  bool cancelled = false;
  CHECK(outcome_of([&] {
          return while_holds(slow_value(Millis(30), 7, false, cancelled), Millis(5),
                             [] { return true; });
        }) == "7");
  CHECK_FALSE(cancelled);
}

TEST_CASE("while_holds: the operation's error is its own") {
  bool cancelled = false;
  CHECK(outcome_of([&] {
          return while_holds(slow_value(Millis(10), 7, true, cancelled), Millis(5),
                             [] { return true; });
        }) == "refused");
}

TEST_CASE("while_holds: a condition that turns false cancels the operation") {
  bool cancelled = false;
  int looks = 0;
  CHECK(outcome_of([&] {
          return while_holds(slow_value(Millis(2000), 7, false, cancelled), Millis(5),
                             [&] { return ++looks < 3; });
        }) == "ended");
  CHECK(cancelled);
  CHECK(looks == 3);
}
