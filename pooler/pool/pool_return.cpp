// Pool bookkeeping, the returning side: connections given back (to a waiter, to the worker's
// idle list, or closed), discarded, topped up, swept and closed on command; the pool's login
// and stats. The acquiring side: pool.cpp.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "pooler/pool/pool.hpp"
#include "pooler/pool/pool_waiter.hpp"

namespace pgmux::pooler {

void Pool::wake_locked(const std::shared_ptr<Waiter>& w) {
  w->done = true;
  asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
}

std::shared_ptr<Pool::Waiter> Pool::pop_waiter_for_locked(int worker) {
  // Moving a connection to another worker's event loop costs a de-registration, a
  // registration, a wake-up across threads and the receive state the loop knew. So a
  // connection goes to the oldest waiter of its own worker, unless the queue's head (on
  // another worker) has waited more than twice as long (and 2 ms longer): a worker whose
  // clients wait longer draws connections over, connections settle where the demand is, and
  // no client waits more than about twice as long as one on another worker. Looking at the first
  // few waiters is enough: with clients spread over the workers, one of them is nearly always
  // there; when none is, the head is served.
  constexpr std::size_t kLookAhead = 32;
  constexpr auto kSlack = std::chrono::milliseconds(2);
  auto chosen = waiters_.begin();
  if ((*chosen)->worker != worker) {
    const auto end =
        waiters_.begin() + static_cast<std::ptrdiff_t>(std::min(kLookAhead, waiters_.size()));
    auto own = std::find_if(chosen + 1, end, [&](const auto& w) { return w->worker == worker; });
    if (own != end) {
      const auto now = std::chrono::steady_clock::now();
      const auto own_wait = now - (*own)->since;
      const auto head_lead = (*own)->since - (*chosen)->since;
      if (head_lead <= std::max<std::chrono::steady_clock::duration>(own_wait, kSlack)) {
        chosen = own;
      }
    }
  }
  auto w = std::move(*chosen);
  waiters_.erase(chosen);
  return w;
}

void Pool::give_back(std::unique_ptr<ServerConnection> conn) {
  // An idle connection holds no receive buffer (on the worker it was leased on, whose pool
  // the buffer came from).
  conn->io().release_buffer();
  const auto now = ServerConnection::Clock::now();
  if (now >= conn->retire_at() || conn->close_needed()) {
    spdlog::info(
        "{} closing: {}", conn->label(),
        conn->close_needed() ? "RECONNECT or KILL asked for it" : "server_lifetime_ms reached");
    discard(std::move(conn));
    return;
  }
  conn->touch();
  {
    std::lock_guard lock(mutex_);
    --active_;
    if (!waiters_.empty()) {
      auto w = pop_waiter_for_locked(conn->bound_worker());
      ++active_;
      w->conn = std::move(conn);
      wake_locked(w);
      return;
    }
    if (total_ <= hot_.size) {
      conn->watch_while_idle();  // on its worker still: nobody else can take it yet
      idle_[static_cast<std::size_t>(conn->bound_worker())].push_back(std::move(conn));
    } else {
      release_slot_locked();  // a reserve connection nobody waits for: shrink back
    }
  }
  if (conn) {
    spdlog::info("{} closing: reserve connection no longer needed", conn->label());
    conn->close();
    notify_budgets();
    return;
  }
  // An idle connection here is wasted while another pool sharing a spent budget has clients
  // queued: give the unit to them.
  for (const auto& b : budgets_) {
    if (!b->exhausted()) continue;
    for (const auto& p : b->pools()) {
      if (p.get() != this && p->has_waiters()) {
        close_one_idle();
        return;
      }
    }
  }
}

void Pool::discard(std::unique_ptr<ServerConnection> conn) {
  conn->close();
  {
    std::lock_guard lock(mutex_);
    --active_;
    if (!waiters_.empty() && !login_blocked_locked()) {
      auto w = waiters_.front();
      waiters_.pop_front();
      ++connecting_;
      w->slot = true;  // the budget unit passes straight to the waiter
      wake_locked(w);
      return;
    }
    release_slot_locked();
  }
  notify_budgets();
}

awaitable<void> Pool::top_up(asio::io_context& io, int worker) {
  const auto cfg = settings_.load();
  {
    std::lock_guard lock(mutex_);
    if (total_ >= cfg->min_size || !waiters_.empty() || login_blocked_locked()) co_return;
    if (!take_slot_locked(false)) co_return;
    ++connecting_;
  }
  try {
    ServerLease lease = co_await open_new(io, worker);
    lease.give_back();
  } catch (const std::exception& e) {
    spdlog::warn("pool {}/{}: opening a connection for min_pool_size failed: {}", database_, user_,
                 e.what());
  }
}

void Pool::sweep(int worker) {
  std::vector<std::unique_ptr<ServerConnection>> doomed;
  const auto now = ServerConnection::Clock::now();
  const Millis idle_timeout = settings_.load()->idle_timeout;
  {
    std::lock_guard lock(mutex_);
    auto& list = idle_[static_cast<std::size_t>(worker)];
    std::erase_if(list, [&](std::unique_ptr<ServerConnection>& c) {
      if (!expired(*c, now, idle_timeout)) return false;
      doomed.push_back(std::move(c));
      release_slot_locked();
      return true;
    });
  }
  for (auto& c : doomed) {
    spdlog::info("{} closing: {} reached", c->label(),
                 now >= c->retire_at() ? "server_lifetime_ms" : "server_idle_timeout_ms");
    c->close();
  }
  if (!doomed.empty()) notify_budgets();
}

bool Pool::close_one_idle() {
  std::unique_ptr<ServerConnection> victim;
  {
    std::lock_guard lock(mutex_);
    for (auto& list : idle_) {
      if (list.empty()) continue;
      victim = std::move(list.front());  // the least recently used of this worker
      list.erase(list.begin());
      release_slot_locked();
      break;
    }
  }
  if (!victim) return false;
  spdlog::info("{} closing: idle, and another pool sharing its connection limit needs one",
               victim->label());
  victim->close();
  notify_budgets();
  return true;
}

void Pool::close_idle() {
  {
    std::lock_guard lock(mutex_);
    for (auto& list : idle_) {
      for (auto& c : list) {
        c->close();
        release_slot_locked();
      }
      list.clear();
    }
  }
}

int Pool::close_marked_idle() {
  std::vector<std::unique_ptr<ServerConnection>> doomed;
  {
    std::lock_guard lock(mutex_);
    for (auto& list : idle_) {
      std::erase_if(list, [&](std::unique_ptr<ServerConnection>& c) {
        if (!c->close_needed()) return false;
        doomed.push_back(std::move(c));
        release_slot_locked();
        return true;
      });
    }
  }
  for (auto& c : doomed) {
    spdlog::info("{} closing: RECONNECT or KILL asked for it", c->label());
    c->close();
  }
  if (!doomed.empty()) notify_budgets();
  return static_cast<int>(doomed.size());
}

std::optional<ServerLogin> Pool::update_login(ServerLogin fresh) {
  std::lock_guard lock(mutex_);
  const bool moved = fresh.endpoint.host != login_.endpoint.host ||
                     fresh.endpoint.port != login_.endpoint.port || fresh.dbname != login_.dbname;
  ServerLogin old = std::exchange(login_, std::move(fresh));
  if (!moved) return std::nullopt;
  welcome_.reset();        // the next login reports the new server's parameters
  login_failing_ = false;  // the old server's failures say nothing about the new one
  return old;
}

void Pool::fail_waiters(const std::string& sqlstate, const std::string& message) {
  std::lock_guard lock(mutex_);
  kill_state_ = sqlstate;
  kill_message_ = message;
  kills_.fetch_add(1);
  fail_waiters_locked(sqlstate, message);
}

std::vector<std::uint64_t> Pool::idle_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::uint64_t> out;
  for (const auto& list : idle_) {
    for (const auto& c : list) out.push_back(c->id());
  }
  return out;
}

std::shared_ptr<const ParameterMap> Pool::welcome_parameters() const {
  std::lock_guard lock(mutex_);
  return welcome_;
}

PoolStats Pool::stats() const {
  const auto cfg = settings_.load();
  std::lock_guard lock(mutex_);
  PoolStats s{.database = database_, .user = user_, .target = target_, .size = cfg->size};
  s.clients = clients_.load(std::memory_order_relaxed);
  s.active = active_;
  s.connecting = connecting_;
  s.waiting = static_cast<int>(waiters_.size()) + held_by_pause_.load();
  for (const auto& list : idle_) s.idle += static_cast<int>(list.size());
  if (!waiters_.empty()) {
    s.max_wait_us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - waiters_.front()->since)
                        .count();
  }
  s.total_acquired = total_acquired_;
  s.total_timeouts = total_timeouts_;
  s.total_moves = total_moves_.load(std::memory_order_relaxed);
  s.reserve_in_use = std::max(0, total_ - cfg->size);
  return s;
}

}  // namespace pgmux::pooler
