// A client's place in a pool's FIFO queue (private to pool.cpp and pool_return.cpp).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pooler/pool/pool.hpp"

namespace pgmux::pooler {

// A queued acquire. The waker fills `conn`, `slot` or `error_*` under the pool mutex and
// cancels the timer on the waiter's own executor; the waiter decides under the mutex whether it
// was served.
struct Pool::Waiter {
  Waiter(Executor ex, int on_worker) : timer(std::move(ex)), worker(on_worker) {}
  Timer timer;
  int worker;  // whose event loop the waiting client lives on
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  std::unique_ptr<ServerConnection> conn;  // an idle connection handed over
  bool slot = false;                       // permission to open a new connection
  bool done = false;
  std::string error_state, error_message;  // served with a failure instead
};

}  // namespace pgmux::pooler
