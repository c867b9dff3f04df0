// The periodic check behind release_memory_after_departures.
#include "pooler/memory_release.hpp"

#include <malloc.h>

namespace pgmux::pooler {

awaitable<void> release_memory_after_departures(std::function<int()> open_now,
                                                std::function<std::uint64_t()> accepted,
                                                std::function<std::uint64_t()> dozed,
                                                MemoryRelease settings) {
  Timer timer(co_await asio::this_coro::executor);
  std::int64_t open_before = open_now();
  std::uint64_t accepted_before = accepted();
  std::uint64_t dozed_before = dozed();
  std::uint64_t closed = 0;  // since the last trim
  for (;;) {
    timer.expires_after(settings.check_every);
    if (auto [ec] = co_await timer.async_wait(as_result); ec) co_return;
    const std::int64_t open = open_now();
    const std::uint64_t accepted_total = accepted();
    // Closed in this period = opened in it minus the net growth.
    const std::int64_t closed_now =
        static_cast<std::int64_t>(accepted_total - accepted_before) - (open - open_before);
    if (closed_now > 0) closed += static_cast<std::uint64_t>(closed_now);
    const std::uint64_t dozed_total = dozed();
    closed += dozed_total - dozed_before;  // a dormant client freed most of its session
    dozed_before = dozed_total;
    if (closed >= settings.closed && open <= open_before) {
      // Rare (a crowd left, or a flood was turned away), and each arena is locked only while
      // it is walked.
      ::malloc_trim(0);
      closed = 0;
    }
    open_before = open;
    accepted_before = accepted_total;
  }
}

}  // namespace pgmux::pooler
