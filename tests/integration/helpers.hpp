// Small helpers shared by the test cases.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace pgmux::it {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls `pred` every 20 ms until it is true or `bound` has passed; returns its last value.
inline bool wait_until(const std::function<bool()>& pred, milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace pgmux::it
