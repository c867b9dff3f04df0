// Gives memory back to the kernel after many clients have left or gone dormant. glibc keeps
// freed heap pages mapped, so a process that once held 10,000 sessions, or took a flood of
// connections, would keep their resident memory; once enough connections have closed (or
// their sessions were reduced to dormant ones) and the count is not growing, malloc_trim
// returns the free pages.
#pragma once

#include <cstdint>
#include <functional>

#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

struct MemoryRelease {
  Millis check_every{2000};
  std::uint64_t closed = 256;  // connections closed or dozed since the last trim that call for one
};

// Runs until the loop stops. `open_now` is the number of client connections now, `accepted`
// the number accepted since start and `dozed` the number of times a client went dormant
// (both monotonic).
awaitable<void> release_memory_after_departures(std::function<int()> open_now,
                                                std::function<std::uint64_t()> accepted,
                                                std::function<std::uint64_t()> dozed,
                                                MemoryRelease settings = {});

}  // namespace pgmux::pooler
