// acquire()'s queue without a coroutine (see pool.hpp): the session engine's handlers queue a
// waiter when the pool is full and go on from the handler of its timer, which a worker giving
// a connection back cancels (wake_locked), as acquire_once() goes on from its co_await.
#include "pooler/pool/pool.hpp"
#include "pooler/pool/pool_waiter.hpp"

namespace pgmux::pooler {

std::shared_ptr<Pool::Waiter> Pool::queue_when_full(asio::io_context& io, int worker, Millis wait) {
  if (paused_.load() || wait.count() <= 0 || (fenced_ && fenced_())) return nullptr;
  const auto cfg = settings_.load();
  // A reserve connection after reserve_pool_timeout_ms is acquire_once()'s business.
  if (cfg->reserve_size > 0 && cfg->reserve_timeout < wait) return nullptr;
  std::lock_guard lock(mutex_);
  // Below its size the pool may open a connection (or is held back by a shared budget, which
  // acquire_once() reclaims from): that, and failing logins, are acquire()'s too.
  if (total_ < cfg->size || login_blocked_locked()) return nullptr;
  for (const auto& list : idle_) {
    if (!list.empty()) return nullptr;
  }
  auto waiter = std::make_shared<Waiter>(io.get_executor(), worker);
  waiter->timer.expires_at(waiter->since + wait);
  waiters_.push_back(waiter);
  return waiter;
}

Timer& Pool::timer_of(Waiter& waiter) {
  return waiter.timer;
}

Pool::QuickWaitEnd Pool::end_quick_wait(const std::shared_ptr<Waiter>& waiter, asio::io_context& io,
                                        int worker, Millis wait) {
  QuickWaitEnd end;
  std::unique_ptr<ServerConnection> conn;
  {
    std::lock_guard lock(mutex_);
    if (!waiter->done) {
      std::erase(waiters_, waiter);
      ++total_timeouts_;
      end.failure.emplace("53300", timeout_message_locked(wait));
      return end;
    }
    if (waiter->slot) {
      // Permission to open a connection: acquire() takes it again at once (opening one needs
      // a coroutine).
      --connecting_;
      release_slot_locked();
      return end;
    }
    conn = std::move(waiter->conn);
    if (conn) ++total_acquired_;
  }
  if (!waiter->error_state.empty()) {
    end.failure.emplace(waiter->error_state, waiter->error_message);
    return end;
  }
  if (!conn) return end;
  bind_to(*conn, io, worker);
  ServerLease lease(this, std::move(conn));
  // Handed over by give_back() as its lease ended, so never idle: no peek at the socket.
  if (lease->spoke_while_idle(false)) {
    lease.discard();
    return end;
  }
  TrafficCounters& t = traffic(worker);
  TrafficCounters::add(t.wait_count, 1);
  TrafficCounters::add(t.wait_time_us, static_cast<std::uint64_t>(
                                           std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - waiter->since)
                                               .count()));
  end.lease = std::move(lease);
  return end;
}

std::string Pool::timeout_message_locked(Millis wait) const {
  return "no server connection became available for pool " + database_ + "/" + user_ +
         " within query_wait_timeout_ms (" + std::to_string(wait.count()) +
         " ms): " + exhaustion_reason_locked();
}

}  // namespace pgmux::pooler
