// Pool bookkeeping: budget, per-worker idle lists, FIFO waiters, cross-worker hand-over.
#include "pooler/pool.hpp"

#include <spdlog/spdlog.h>

namespace pgmux::pooler {

// A queued acquire. The waker fills `conn` or `slot` under the pool mutex and cancels the timer
// on the waiter's own executor; the waiter decides under the mutex whether it was served.
struct Pool::Waiter {
  explicit Waiter(asio::any_io_executor ex) : timer(std::move(ex)) {}
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  std::unique_ptr<ServerConnection> conn;  // an idle connection handed over
  bool slot = false;                       // permission to open a new connection
  bool done = false;
};

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
           int workers, std::atomic<std::uint64_t>& server_ids)
    : database_(std::move(database)),
      user_(std::move(user)),
      login_(std::move(login)),
      settings_(settings),
      server_ids_(server_ids),
      idle_(static_cast<std::size_t>(workers)) {}

Pool::~Pool() {
  close_idle();
}

bool Pool::expired(const ServerConnection& c, ServerConnection::Clock::time_point now) const {
  return (settings_.lifetime.count() > 0 && now - c.created_at() > settings_.lifetime) ||
         (settings_.idle_timeout.count() > 0 && now - c.last_used() > settings_.idle_timeout);
}

std::unique_ptr<ServerConnection> Pool::take_idle_locked(
    int worker, std::vector<std::unique_ptr<ServerConnection>>& expired_out) {
  const auto now = ServerConnection::Clock::now();
  const std::size_t n = idle_.size();
  for (std::size_t i = 0; i < n; ++i) {
    auto& list = idle_[(static_cast<std::size_t>(worker) + i) % n];  // own worker first
    while (!list.empty()) {
      auto c = std::move(list.back());
      list.pop_back();
      if (!expired(*c, now)) return c;
      --total_;
      expired_out.push_back(std::move(c));
    }
  }
  return nullptr;
}

awaitable<ServerLease> Pool::acquire(asio::io_context& io, int worker, Millis wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (bool first = true;; first = false) {
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    ServerLease lease = co_await acquire_once(io, worker, first ? wait : std::max(left, Millis(1)));
    const bool reused = lease->last_used() != lease->created_at();
    if (!reused || settings_.check_query.empty() ||
        ServerConnection::Clock::now() - lease->last_used() <= settings_.check_delay ||
        co_await still_alive(*lease)) {
      co_return lease;
    }
    lease.discard();  // dead or broken while idle: try the next one
  }
}

awaitable<bool> Pool::still_alive(ServerConnection& conn) {
  try {
    co_await with_timeout(conn.simple_query(settings_.check_query), settings_.connect_timeout);
    conn.io().release_frame();
    conn.touch();
    co_return conn.tx_status() == 'I';
  } catch (const std::exception& e) {
    spdlog::info("{} failed server_check_query after idling ({}): closing it", conn.label(),
                 e.what());
  }
  co_return false;
}

awaitable<ServerLease> Pool::acquire_once(asio::io_context& io, int worker, Millis wait) {
  std::vector<std::unique_ptr<ServerConnection>> expired_conns;
  std::unique_ptr<ServerConnection> conn;
  std::shared_ptr<Waiter> waiter;
  bool open = false;
  {
    std::lock_guard lock(mutex_);
    conn = take_idle_locked(worker, expired_conns);
    if (conn) {
      ++active_;
    } else if (total_ < settings_.size) {
      ++total_;
      ++connecting_;
      open = true;
    } else {
      waiter = std::make_shared<Waiter>(io.get_executor());
      waiters_.push_back(waiter);
    }
  }
  for (auto& c : expired_conns) c->close();
  spdlog::debug("pool {}/{} acquire: total {} active {} open {} queued {}", database_, user_,
                total_, active_, open, waiter != nullptr);
  if (open) co_return co_await open_new(io, worker);
  if (waiter) {
    waiter->timer.expires_after(wait);
    co_await waiter->timer.async_wait(as_result);
    std::lock_guard lock(mutex_);
    if (!waiter->done) {
      std::erase(waiters_, waiter);
      ++total_timeouts_;
      throw PoolTimeout("no server connection became available for pool " + database_ + "/" +
                        user_ + " within query_wait_timeout_ms (" + std::to_string(wait.count()) +
                        " ms); the pool has " + std::to_string(settings_.size) + " connections");
    }
    if (waiter->slot) open = true;
    conn = std::move(waiter->conn);
  }
  if (open) co_return co_await open_new(io, worker);
  if (conn->bound_worker() != worker) {
    conn->rebind(io);
    conn->set_bound_worker(worker);
  }
  {
    std::lock_guard lock(mutex_);
    ++total_acquired_;
  }
  co_return ServerLease(this, std::move(conn));
}

awaitable<ServerLease> Pool::open_new(asio::io_context& io, int worker) {
  (void)io;
  ServerLogin login = login_;
  std::unique_ptr<ServerConnection> conn;
  try {
    conn = co_await with_timeout(ServerConnection::open(std::move(login), ++server_ids_),
                                 settings_.connect_timeout);
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (dynamic_cast<const TimeoutError*>(&e) != nullptr) {
      message = "timed out connecting to server " + login_.endpoint.host + ":" +
                std::to_string(login_.endpoint.port) + " (server_connect_timeout_ms)";
    }
    std::lock_guard lock(mutex_);
    --connecting_;
    --total_;
    // The slot is free again: let the next waiter try to open it.
    if (!waiters_.empty()) {
      auto w = waiters_.front();
      waiters_.pop_front();
      ++total_;
      ++connecting_;
      w->slot = true;
      wake_locked(w);
    }
    if (auto* se = dynamic_cast<const ServerError*>(&e)) throw ServerError(se->sqlstate(), message);
    throw ServerError("08006", message);
  }
  conn->set_bound_worker(worker);
  spdlog::info("{} connected (backend pid {})", conn->label(), conn->backend_pid());
  std::lock_guard lock(mutex_);
  if (!welcome_) welcome_ = conn->parameters();
  --connecting_;
  ++active_;
  ++total_acquired_;
  co_return ServerLease(this, std::move(conn));
}

void Pool::wake_locked(const std::shared_ptr<Waiter>& w) {
  w->done = true;
  asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
}

void Pool::give_back(std::unique_ptr<ServerConnection> conn) {
  const auto now = ServerConnection::Clock::now();
  if (settings_.lifetime.count() > 0 && now - conn->created_at() > settings_.lifetime) {
    spdlog::info("{} closing: server_lifetime_ms reached", conn->label());
    discard(std::move(conn));
    return;
  }
  conn->touch();
  std::lock_guard lock(mutex_);
  --active_;
  if (!waiters_.empty()) {
    auto w = waiters_.front();
    waiters_.pop_front();
    ++active_;
    w->conn = std::move(conn);
    wake_locked(w);
    return;
  }
  idle_[static_cast<std::size_t>(conn->bound_worker())].push_back(std::move(conn));
}

void Pool::discard(std::unique_ptr<ServerConnection> conn) {
  conn->close();
  std::lock_guard lock(mutex_);
  --active_;
  if (!waiters_.empty()) {
    auto w = waiters_.front();
    waiters_.pop_front();
    ++connecting_;
    w->slot = true;  // the budget unit passes straight to the waiter
    wake_locked(w);
    return;
  }
  --total_;
}

awaitable<void> Pool::top_up(asio::io_context& io, int worker) {
  {
    std::lock_guard lock(mutex_);
    if (total_ >= settings_.min_size || !waiters_.empty()) co_return;
    ++total_;
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
  {
    std::lock_guard lock(mutex_);
    auto& list = idle_[static_cast<std::size_t>(worker)];
    std::erase_if(list, [&](std::unique_ptr<ServerConnection>& c) {
      if (!expired(*c, now)) return false;
      doomed.push_back(std::move(c));
      --total_;
      return true;
    });
  }
  for (auto& c : doomed) {
    spdlog::info("{} closing: idle timeout or lifetime reached", c->label());
    c->close();
  }
}

void Pool::close_idle() {
  std::lock_guard lock(mutex_);
  for (auto& list : idle_) {
    for (auto& c : list) c->close();
    total_ -= static_cast<int>(list.size());
    list.clear();
  }
}

std::optional<ParameterMap> Pool::welcome_parameters() const {
  std::lock_guard lock(mutex_);
  return welcome_;
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mutex_);
  PoolStats s{.database = database_, .user = user_, .size = settings_.size};
  s.clients = clients_.load(std::memory_order_relaxed);
  s.active = active_;
  s.connecting = connecting_;
  s.waiting = static_cast<int>(waiters_.size());
  for (const auto& list : idle_) s.idle += static_cast<int>(list.size());
  if (!waiters_.empty()) {
    s.max_wait_us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - waiters_.front()->since)
                        .count();
  }
  s.total_acquired = total_acquired_;
  s.total_timeouts = total_timeouts_;
  return s;
}

}  // namespace pgmux::pooler
