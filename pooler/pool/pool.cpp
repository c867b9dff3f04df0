// Pool bookkeeping, the acquiring side: budget, per-worker idle lists, FIFO waiters,
// cross-worker hand-over, reserve connections, shared caps and the login retry window.
// Opening connections: pool_connect.cpp. Connections coming back, maintenance and stats:
// pool_return.cpp.
#include "pooler/pool/pool.hpp"

#include <spdlog/spdlog.h>

#include "pooler/pool/pool_waiter.hpp"

namespace pgmux::pooler {

ServerLease& ServerLease::operator=(ServerLease&& o) noexcept {
  if (this != &o) {
    if (conn_) pool_->discard(std::move(conn_));
    pool_ = o.pool_;
    conn_ = std::move(o.conn_);
  }
  return *this;
}

ServerLease::~ServerLease() {
  if (conn_) pool_->discard(std::move(conn_));
}

void ServerLease::give_back() {
  if (conn_) pool_->give_back(std::move(conn_));
}

void ServerLease::discard() {
  if (conn_) pool_->discard(std::move(conn_));
}

Pool::Pool(std::string database, std::string user, ServerLogin login, PoolSettingsView settings,
           int workers, std::atomic<std::uint64_t>& server_ids,
           std::vector<std::shared_ptr<ConnectionBudget>> budgets, int target)
    : database_(std::move(database)),
      user_(std::move(user)),
      login_(std::move(login)),
      settings_(std::make_shared<const PoolSettingsView>(std::move(settings))),
      server_ids_(server_ids),
      budgets_(std::move(budgets)),
      target_(target),
      traffic_(std::make_unique<TrafficCounters[]>(static_cast<std::size_t>(workers))),
      workers_(static_cast<std::size_t>(workers)),
      idle_(static_cast<std::size_t>(workers)) {
  set_hot_locked(*settings_.load());  // nobody else sees the pool yet
}

Pool::~Pool() {
  close_idle();
}

bool Pool::expired(const ServerConnection& c, ServerConnection::Clock::time_point now,
                   Millis idle_timeout) {
  return now >= c.retire_at() || (idle_timeout.count() > 0 && now - c.last_used() > idle_timeout);
}

bool Pool::take_slot_locked(bool reserve) {
  const auto cfg = settings_.load();
  const int cap = cfg->size + (reserve ? cfg->reserve_size : 0);
  if (total_ >= cap) return false;
  for (std::size_t i = 0; i < budgets_.size(); ++i) {
    if (!budgets_[i]->try_take()) {
      for (std::size_t j = 0; j < i; ++j) budgets_[j]->give();
      return false;
    }
  }
  ++total_;
  return true;
}

void Pool::release_slot_locked() {
  --total_;
  for (const auto& b : budgets_) b->give();
}

void Pool::notify_budgets() {
  for (const auto& b : budgets_) {
    for (const auto& p : b->pools()) p->retry_waiters();
  }
}

void Pool::retry_waiters() {
  std::lock_guard lock(mutex_);
  while (!waiters_.empty() && !login_blocked_locked() && take_slot_locked(false)) {
    auto w = waiters_.front();
    waiters_.pop_front();
    ++connecting_;
    w->slot = true;
    wake_locked(w);
  }
}

void Pool::reclaim_from_siblings() {
  for (const auto& b : budgets_) {
    if (!b->exhausted()) continue;
    for (const auto& p : b->pools()) {
      if (p.get() != this && p->close_one_idle()) return;
    }
  }
}

bool Pool::has_waiters() const {
  std::lock_guard lock(mutex_);
  return !waiters_.empty();
}

bool Pool::server_unavailable(const std::string& sqlstate) {
  return sqlstate == "57P03" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "08006";
}

bool Pool::login_blocked_locked() const {
  if (!login_failing_) return false;
  // The server was down rather than refusing this user: once the lag monitor has sampled it
  // since, it takes connections again, and server_login_retry_ms need not run out.
  const bool was_down = server_sampled_at_ns_ && server_unavailable(login_error_state_);
  if (was_down && server_sampled_at_ns_() > login_failed_at_ns_) return false;
  const auto now = std::chrono::steady_clock::now();
  // roles = "auto": until the monitor has seen it back, nobody knows whether it came back as
  // the primary or as a standby (a login then would take a write to a standby), for up to
  // primary_wait_ms.
  if (was_down && fenced_ && server_sampled_at_ns_() != 0) {  // (a monitor that answers)
    const auto failed_at = std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::nanoseconds(login_failed_at_ns_)));
    if (now < failed_at + settings_.load()->server_wait) return true;
  }
  return now < login_retry_at_;
}

std::string Pool::exhaustion_reason_locked() const {
  const auto cfg = settings_.load();
  if (total_ >= cfg->size) {
    std::string r = "all " + std::to_string(cfg->size) + " connections of the pool are in use";
    if (cfg->reserve_size > 0) {
      r += ", and " + std::to_string(std::max(0, total_ - cfg->size)) + " of reserve_pool_size " +
           std::to_string(cfg->reserve_size);
    }
    return r;
  }
  for (const auto& b : budgets_) {
    if (b->exhausted()) return b->describe();
  }
  if (login_blocked_locked()) return "server login is failing: " + login_error_message_;
  return "no connection was returned in time";
}

void Pool::fail_waiters_locked(const std::string& sqlstate, const std::string& message) {
  while (!waiters_.empty()) {
    auto w = waiters_.front();
    waiters_.pop_front();
    w->error_state = sqlstate;
    w->error_message = message;
    wake_locked(w);
  }
}

std::unique_ptr<ServerConnection> Pool::take_idle_locked(
    int worker, std::vector<std::unique_ptr<ServerConnection>>& expired_out) {
  const auto now = ServerConnection::Clock::now();
  const Millis idle_timeout = hot_.idle_timeout;
  const std::size_t n = idle_.size();
  for (std::size_t i = 0; i < n; ++i) {
    auto& list = idle_[(static_cast<std::size_t>(worker) + i) % n];  // own worker first
    while (!list.empty()) {
      auto c = std::move(list.back());
      list.pop_back();
      if (!expired(*c, now, idle_timeout) && !c->close_needed()) return c;
      release_slot_locked();
      expired_out.push_back(std::move(c));
    }
  }
  return nullptr;
}

void Pool::update_settings(PoolSettingsView settings) {
  auto fresh = std::make_shared<const PoolSettingsView>(std::move(settings));
  {
    std::lock_guard lock(mutex_);
    set_hot_locked(*fresh);
  }
  settings_.store(std::move(fresh));
  retry_waiters();  // a larger pool serves its queue now
}

TrafficTotals Pool::traffic_totals() const {
  TrafficTotals t;
  for (std::size_t i = 0; i < workers_; ++i) t += traffic_[i].load();
  return t;
}

awaitable<ServerLease> Pool::acquire(asio::io_context& io, int worker, Millis wait) {
  const auto started = std::chrono::steady_clock::now();
  if (paused_.load()) {
    // Held until RESUME; polled, so pausing needs no wake-up bookkeeping across workers.
    const std::uint64_t kills = kills_.load();
    held_by_pause_.fetch_add(1);
    Timer poll(io);
    while (paused_.load() && kills_.load() == kills) {
      poll.expires_after(Millis(5));
      co_await poll.async_wait(as_result);
    }
    held_by_pause_.fetch_sub(1);
    if (kills_.load() != kills) {
      std::lock_guard lock(mutex_);
      throw ServerError(kill_state_, kill_message_);
    }
  }
  ServerLease lease = co_await acquire_through_restart(io, worker, wait);
  TrafficCounters& t = traffic(worker);
  TrafficCounters::add(t.wait_count, 1);
  TrafficCounters::add(t.wait_time_us, static_cast<std::uint64_t>(
                                           std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count()));
  co_return lease;
}

std::optional<ServerLease> Pool::try_acquire_idle(asio::io_context& io, int worker) {
  // A fenced primary's idle connections are not handed out: acquire() waits for the promotion.
  if (paused_.load() || (fenced_ && fenced_())) return std::nullopt;
  std::vector<std::unique_ptr<ServerConnection>> expired_conns;
  std::unique_ptr<ServerConnection> conn;
  {
    std::lock_guard lock(mutex_);
    conn = take_idle_locked(worker, expired_conns);
    if (conn && hot_.check && conn->last_used() != conn->created_at() &&
        ServerConnection::Clock::now() - conn->last_used() > hot_.check_delay) {
      // Idle long enough to be checked first: acquire() does that, asynchronously.
      idle_[static_cast<std::size_t>(conn->bound_worker()) % idle_.size()].push_back(
          std::move(conn));
    }
    if (conn) {
      ++active_;
      ++total_acquired_;
    }
  }
  for (auto& c : expired_conns) c->close();
  if (!expired_conns.empty()) notify_budgets();
  if (!conn) return std::nullopt;
  bind_to(*conn, io, worker);
  ServerLease lease(this, std::move(conn));
  if (!quiet_while_idle(lease)) return std::nullopt;
  TrafficCounters::add(traffic(worker).wait_count, 1);  // waited for nothing
  return lease;
}

awaitable<ServerLease> Pool::acquire_through_restart(asio::io_context& io, int worker,
                                                     Millis wait) {
  const Millis hold = settings_.load()->server_wait;
  const auto deadline = std::chrono::steady_clock::now() + hold;
  Millis pause(50);
  for (;;) {
    std::optional<ServerError> failure;
    if (fenced_ && fenced_()) {
      failure = ServerError(
          "25006",
          "the primary is in recovery (demoted, or back as a standby): no write goes to it "
          "until the lag monitor finds the promoted server (roles = \"auto\")");
      if (hold.count() <= 0) throw *failure;
      pause = Millis(50);  // the promotion is seen at a lag sample: look again soon
    } else {
      try {
        co_return co_await acquire_checked(io, worker, wait);
      } catch (const ServerError& e) {
        if (hold.count() <= 0 || !server_unavailable(e.sqlstate())) throw;
        failure = e;
      }
    }
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw ServerError(failure->sqlstate(),
                        std::string(failure->what()) + " (waited primary_wait_ms, " +
                            std::to_string(hold.count()) + " ms, for it to come back)");
    }
    Timer timer(io, std::min(pause, left));
    co_await timer.async_wait(as_result);
    pause = std::min(pause * 2, Millis(500));
  }
}

awaitable<ServerLease> Pool::acquire_checked(asio::io_context& io, int worker, Millis wait) {
  const auto cfg = settings_.load();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (bool first = true;; first = false) {
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    ServerLease lease = co_await acquire_once(io, worker, first ? wait : std::max(left, Millis(1)));
    const bool reused = lease->last_used() != lease->created_at();
    if (!quiet_while_idle(lease)) continue;
    if (!reused || cfg->check_query.empty() ||
        ServerConnection::Clock::now() - lease->last_used() <= cfg->check_delay ||
        co_await still_alive(*lease)) {
      co_return lease;
    }
    lease.discard();  // dead or broken while idle: try the next one
  }
}

void Pool::bind_to(ServerConnection& conn, asio::io_context& io, int worker) {
  if (conn.bound_worker() == worker) return;
  total_moves_.fetch_add(1, std::memory_order_relaxed);
  conn.rebind(io);
  conn.set_bound_worker(worker);
}

bool Pool::quiet_while_idle(ServerLease& lease) {
  // A new connection may have heard from the server after its login (a TLS session ticket).
  const bool fresh = lease->last_used() == lease->created_at();
  if (!lease->spoke_while_idle(!fresh) || fresh) return true;
  spdlog::info("{} was closed or spoke while idle (server restart or termination): replacing it",
               lease->label());
  lease.discard();
  return false;
}

Pool::AcquirePlan Pool::plan_acquire(asio::io_context& io, int worker,
                                     const PoolSettingsView& cfg) {
  AcquirePlan plan;
  std::lock_guard lock(mutex_);
  plan.conn = take_idle_locked(worker, plan.expired);
  if (plan.conn) {
    ++active_;
  } else if (login_blocked_locked() && total_ == 0) {
    // Nothing to wait for: the server refused the last login moments ago.
    plan.login_failure.emplace(login_error_state_,
                               "server login has been failing (" + login_error_message_ +
                                   "); pgmux tries again after server_login_retry_ms (" +
                                   std::to_string(cfg.login_retry.count()) + " ms)");
  } else if (!login_blocked_locked() && take_slot_locked(false)) {
    ++connecting_;
    plan.open = true;
  } else {
    plan.budget_blocked = total_ < cfg.size && !login_blocked_locked();
    plan.waiter = std::make_shared<Waiter>(io.get_executor(), worker);
    waiters_.push_back(plan.waiter);
  }
  return plan;
}

awaitable<ServerLease> Pool::acquire_once(asio::io_context& io, int worker, Millis wait) {
  const auto cfg = settings_.load();
  AcquirePlan plan = plan_acquire(io, worker, *cfg);
  for (auto& c : plan.expired) c->close();
  if (!plan.expired.empty()) notify_budgets();
  if (plan.login_failure) throw *plan.login_failure;
  const std::shared_ptr<Waiter>& waiter = plan.waiter;
  if (waiter) {
    // Queued: until a connection is handed over, a slot freed by a failed open is given to
    // it, the reserve opens after reserve_pool_timeout_ms, or query_wait_timeout_ms passes.
    if (plan.budget_blocked) reclaim_from_siblings();
    const auto deadline = waiter->since + wait;
    bool reserve_tried = cfg->reserve_size == 0 || cfg->reserve_timeout >= wait;
    for (;;) {
      waiter->timer.expires_at(
          reserve_tried ? deadline : std::min(deadline, waiter->since + cfg->reserve_timeout));
      co_await waiter->timer.async_wait(as_result);
      std::lock_guard lock(mutex_);
      if (waiter->done) break;
      if (!reserve_tried) {
        reserve_tried = true;
        if (take_reserve_slot_locked(waiter, *cfg)) break;
        continue;
      }
      std::erase(waiters_, waiter);
      ++total_timeouts_;
      throw PoolTimeout(timeout_message_locked(wait));
    }
    if (!waiter->error_state.empty()) throw ServerError(waiter->error_state, waiter->error_message);
    plan.open = waiter->slot;
    plan.conn = std::move(waiter->conn);
  }
  if (plan.open) co_return co_await open_new(io, worker);
  bind_to(*plan.conn, io, worker);
  {
    std::lock_guard lock(mutex_);
    ++total_acquired_;
  }
  co_return ServerLease(this, std::move(plan.conn));
}

bool Pool::take_reserve_slot_locked(const std::shared_ptr<Waiter>& waiter,
                                    const PoolSettingsView& cfg) {
  if (!take_slot_locked(true)) return false;
  std::erase(waiters_, waiter);
  ++connecting_;
  waiter->slot = true;
  spdlog::info(
      "pool {}/{}: a client waited reserve_pool_timeout_ms ({} ms): opening a reserve "
      "connection ({} of reserve_pool_size {})",
      database_, user_, cfg.reserve_timeout.count(), total_ - cfg.size, cfg.reserve_size);
  return true;
}

}  // namespace pgmux::pooler
