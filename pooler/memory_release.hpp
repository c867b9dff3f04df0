// Gives memory back to the kernel after many clients have left. glibc keeps freed heap pages
// mapped, so a process that once held 10,000 sessions, or took a flood of connections, would
// keep their resident memory; once enough connections have closed and the count is not
// growing, malloc_trim returns the free pages.
#pragma once

#include <cstdint>
#include <functional>

#include "pooler/asio_util.hpp"

namespace pgmux::pooler {

struct MemoryRelease {
  Millis check_every{2000};
  std::uint64_t closed = 256;  // connections closed since the last trim that call for one
};

// Runs until the loop stops. `open_now` is the number of client connections now, `accepted`
// the number accepted since start (monotonic).
awaitable<void> release_memory_after_departures(std::function<int()> open_now,
                                                std::function<std::uint64_t()> accepted,
                                                MemoryRelease settings = {});

}  // namespace pgmux::pooler
