// Pool, the server side of acquiring: opening a new server connection (and what a failed
// login means for the pool and its waiters) and the check query on a connection that idled.
#include <spdlog/spdlog.h>

#include "pooler/pool/pool.hpp"
#include "pooler/pool/pool_waiter.hpp"

namespace pgmux::pooler {

awaitable<bool> Pool::still_alive(ServerConnection& conn) {
  const auto cfg = settings_.load();
  try {
    co_await with_timeout(conn.simple_query(cfg->check_query), cfg->connect_timeout);
    conn.io().release_frame();
    conn.touch();
    co_return conn.tx_status() == 'I';
  } catch (const std::exception& e) {
    spdlog::info("{} failed server_check_query after idling ({}): closing it", conn.label(),
                 e.what());
  }
  co_return false;
}

awaitable<ServerLease> Pool::open_new(asio::io_context& io, int worker) {
  const auto cfg = settings_.load();
  (void)io;
  ServerLogin login;
  {
    std::lock_guard lock(mutex_);
    login = login_;
  }
  const Endpoint endpoint = login.endpoint;
  std::unique_ptr<ServerConnection> conn;
  try {
    if (answering_ && !answering_()) throw ConditionEnded();
    auto opening =
        with_timeout(ServerConnection::open(std::move(login), ++server_ids_), cfg->connect_timeout);
    // A replica that stops answering while a login to it is under way (frozen, cut off)
    // would hold the client until server_connect_timeout_ms: the login is given up on.
    // (Not `?:` around the two co_awaits: GCC 12 miscompiles that.)
    if (answering_) {
      conn = co_await while_holds(std::move(opening), kAnsweringCheck, answering_);
    } else {
      conn = co_await std::move(opening);
    }
  } catch (const ConditionEnded&) {
    const std::string message = "replica " + endpoint.host + ":" + std::to_string(endpoint.port) +
                                " is not answering (its lag samples have stopped): no new "
                                "connection to it";
    {
      // Not a failed login (no server_login_retry_ms: the next sample may readmit it). Its
      // queued clients would wait for connections that will not come: they go elsewhere.
      std::lock_guard lock(mutex_);
      --connecting_;
      release_slot_locked();
      fail_waiters_locked("08006", message);
    }
    notify_budgets();
    throw ServerError("08006", message);
  } catch (const std::exception& e) {
    std::string message = e.what();
    if (dynamic_cast<const TimeoutError*>(&e) != nullptr) {
      message = "timed out connecting to server " + endpoint.host + ":" +
                std::to_string(endpoint.port) + " (server_connect_timeout_ms)";
    }
    const auto* se = dynamic_cast<const ServerError*>(&e);
    const std::string sqlstate = se != nullptr ? se->sqlstate() : "08006";
    record_failed_open(*cfg, sqlstate, message);
    throw ServerError(sqlstate, message);
  }
  conn->set_bound_worker(worker);
  spdlog::info("{} connected (backend pid {})", conn->label(), conn->backend_pid());
  std::lock_guard lock(mutex_);
  if (cfg->lifetime.count() > 0) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    conn->set_retire_at(conn->created_at() + jittered_lifetime(cfg->lifetime, u));
  }
  if (!welcome_) welcome_ = std::make_shared<const ParameterMap>(conn->parameters());
  if (login_failing_) spdlog::info("pool {}/{}: server login works again", database_, user_);
  login_failing_ = false;
  --connecting_;
  ++active_;
  ++total_acquired_;
  co_return ServerLease(this, std::move(conn));
}

void Pool::record_failed_open(const PoolSettingsView& cfg, const std::string& sqlstate,
                              const std::string& message) {
  bool freed = false;
  {
    std::lock_guard lock(mutex_);
    --connecting_;
    if (cfg.login_retry.count() > 0) {
      if (!login_failing_) {
        spdlog::warn(
            "pool {}/{}: server login failed ({}); new connections wait "
            "server_login_retry_ms ({} ms) between attempts",
            database_, user_, message, cfg.login_retry.count());
      }
      login_failing_ = true;
      const auto now = std::chrono::steady_clock::now();
      login_retry_at_ = now + cfg.login_retry;
      login_failed_at_ns_ =
          std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
      login_error_state_ = sqlstate;
      login_error_message_ = message;
      release_slot_locked();
      freed = true;
      // With no connection left, queued clients could only time out: tell them now.
      if (total_ == 0) fail_waiters_locked(sqlstate, message);
    } else if (!waiters_.empty()) {
      // The slot is free again: let the next waiter try to open it.
      auto w = waiters_.front();
      waiters_.pop_front();
      ++connecting_;
      w->slot = true;
      wake_locked(w);
    } else {
      release_slot_locked();
      freed = true;
    }
  }
  if (freed) notify_budgets();
}

}  // namespace pgmux::pooler
