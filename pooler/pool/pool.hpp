// A bounded pool of server connections for one (database, user, target). The budget is shared
// by all workers: the pool never holds more than `size` connections in total. Idle connections
// are kept per worker so a worker normally reuses its own; when it has none and the budget is
// spent, it takes another worker's idle connection (moving the socket) before it queues.
// Waiters are served FIFO per worker: a connection given back goes to the oldest waiter on its
// own worker unless the queue's head waited clearly longer (pop_waiter_for_locked), so
// connections settle where their clients are. Waiters time out with PoolTimeout. A waiter queued
// longer than reserve_timeout may open one of `reserve_size` extra connections, which close again
// as soon as they come back with nobody waiting. Shared caps (max_db_connections,
// max_user_connections) are ConnectionBudgets every connection of the pool also counts against.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "pooler/pool/connection_budget.hpp"
#include "pooler/pool/server_connection.hpp"
#include "pooler/pool/server_lifetime.hpp"
#include "pooler/pool/traffic_stats.hpp"

namespace pgmux::pooler {

class Pool;

class PoolTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// RAII checkout: a lease that is destroyed while still holding its connection discards it,
// because nobody vouched that the connection is clean.
class ServerLease {
 public:
  ServerLease() = default;
  ServerLease(Pool* pool, std::unique_ptr<ServerConnection> conn)
      : pool_(pool), conn_(std::move(conn)) {}
  ServerLease(ServerLease&& o) noexcept = default;
  ServerLease& operator=(ServerLease&& o) noexcept;
  ~ServerLease();

  ServerConnection* operator->() const { return conn_.get(); }
  ServerConnection& operator*() const { return *conn_; }
  explicit operator bool() const { return conn_ != nullptr; }
  // The connection is quiescent and reset: back to the pool.
  void give_back();
  // The connection is in doubt: close it.
  void discard();

 private:
  Pool* pool_ = nullptr;
  std::unique_ptr<ServerConnection> conn_;
};

struct PoolStats {
  std::string database, user;
  int target = -1;  // -1 primary, else replica index
  int size = 0;
  int clients = 0;     // logged-in clients of this pool, with or without a server
  int active = 0;      // leased to clients
  int idle = 0;        // ready in the pool
  int connecting = 0;  // being opened
  int waiting = 0;     // clients queued
  std::int64_t max_wait_us = 0;
  std::uint64_t total_acquired = 0;
  std::uint64_t total_timeouts = 0;
  // Leases that moved a connection to another worker's event loop (each costs a
  // de-registration, a registration and a wake-up across threads).
  std::uint64_t total_moves = 0;
  int reserve_in_use = 0;  // connections open beyond `size`
};

struct PoolSettingsView {
  int size = 1;
  Millis connect_timeout{5000};
  Millis idle_timeout{600000};
  Millis lifetime{3600000};
  // A connection idle longer than check_delay runs check_query before it is handed out; one
  // that fails it is closed and another taken. Empty query: no check.
  std::string check_query;
  Millis check_delay{30000};
  int min_size = 0;  // connections kept open even when idle (min_pool_size)
  int reserve_size = 0;
  Millis reserve_timeout{5000};
  // After a failed login, new connections are not attempted for this long; clients that would
  // need one get the failure instead. 0: retry at once.
  Millis login_retry{1000};
  // The primary's pool only: how long a client waits through a restart (primary_wait_ms).
  Millis server_wait{0};
};

class Pool {
 public:
  Pool(std::string database, std::string user, ServerLogin login, PoolSettingsView settings,
       int workers, std::atomic<std::uint64_t>& server_ids,
       std::vector<std::shared_ptr<ConnectionBudget>> budgets = {}, int target = -1);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Leases a connection bound to `io` (worker `worker`). Throws PoolTimeout when `wait` passes
  // with no connection, ServerError when opening a new one fails.
  awaitable<ServerLease> acquire(asio::io_context& io, int worker, Millis wait);
  // acquire()'s common case without a coroutine: an idle connection (this worker's first)
  // that needs no server_check_query, when the pool is not paused. nullopt: call acquire().
  std::optional<ServerLease> try_acquire_idle(asio::io_context& io, int worker);
  struct Waiter;  // a queued acquire (pool_waiter.hpp)
  // acquire()'s queue without a coroutine (pool_quick_wait.cpp), for the session engine's
  // handlers: when the pool is full (no idle connection, no slot to open one, no reserve pool,
  // not paused, logins not failing), a waiter is queued whose timer expires after `wait`;
  // a worker that gives a connection back cancels it. The caller's handler on that timer
  // calls end_quick_wait(). Null: the pool is not full that way, call acquire().
  std::shared_ptr<Waiter> queue_when_full(asio::io_context& io, int worker, Millis wait);
  static Timer& timer_of(Waiter& waiter);
  // What a quick waiter got: a lease (bound to `worker`, quiet while idle), a failure (53300
  // after `wait`, or a login failure handed over), or neither, when acquire() must take over
  // (a slot to open a connection was handed over: it goes back for acquire() to take; or the
  // connection was closed while idle).
  struct QuickWaitEnd {
    std::optional<ServerLease> lease;
    std::optional<ServerError> failure;
  };
  QuickWaitEnd end_quick_wait(const std::shared_ptr<Waiter>& waiter, asio::io_context& io,
                              int worker, Millis wait);
  // Closes idle connections of `worker` past their idle timeout or lifetime.
  void sweep(int worker);
  // Opens one connection on `worker` if the pool is below its minimum size and nobody waits;
  // the sweep calls it every second, so a pool fills up gradually. Failures are logged.
  awaitable<void> top_up(asio::io_context& io, int worker);
  // Closes every idle connection (shutdown).
  void close_idle();
  // RECONNECT/KILL: closes the idle connections marked close_needed; returns how many. Marked
  // connections in use are closed when they come back.
  int close_marked_idle();
  // KILL: clients queued or held by a pause get `sqlstate`/`message` instead of a connection.
  void fail_waiters(const std::string& sqlstate, const std::string& message);
  // Closes one idle connection to return its unit to the shared budgets; false when none.
  bool close_one_idle();
  // A shared budget has a unit again: hand it to the first waiter if this pool can use it.
  void retry_waiters();

  // RELOAD: new sizes, limits and timeouts. A larger pool serves queued clients at once; a
  // smaller one closes connections as they come back until it fits.
  void update_settings(PoolSettingsView settings);

  // RELOAD: where and as whom new connections log in. Returns the previous login when the
  // server itself changed (address or database name): the caller then has the connections to
  // the old one closed as they come back (RECONNECT's mechanism).
  std::optional<ServerLogin> update_login(ServerLogin fresh);
  [[nodiscard]] ServerLogin login() const {
    std::lock_guard lock(mutex_);
    return login_;
  }

  // A replica's pool: whether the replica answers (DatabaseRouting::answering). One that does
  // not (frozen, cut off) gets no new connection: a login would hang in the client's path
  // until server_connect_timeout_ms, so the open fails at once and the read goes elsewhere.
  // Set once, before the pool is shared.
  void set_answering(std::function<bool()> answering) { answering_ = std::move(answering); }
  // The primary's pool: when the lag monitor last had an answer from the primary. After a
  // failed login that found the server down (57P0x, 08006), an answer since says it is back,
  // and logins are tried again before server_login_retry_ms has run out (under roles =
  // "auto", not before: see login_blocked_locked). Set once, before sharing.
  void set_server_sampled(std::function<std::int64_t()> at_ns) {
    server_sampled_at_ns_ = std::move(at_ns);
  }
  // The primary's pool under roles = "auto" (only then): whether the server it logs in to is
  // fenced (DatabaseRouting::primary_fenced). New leases then wait, as through a restart, for
  // the promoted server. Set once, before sharing.
  void set_fenced(std::function<bool()> fenced) { fenced_ = std::move(fenced); }
  // The server is there but not taking connections now (starting up, shutting down, a
  // restart), or cannot be reached: worth waiting for, unlike a refused login.
  static bool server_unavailable(const std::string& sqlstate);

  // PAUSE: new acquisitions wait (without timing out) until resumed; leases held go on.
  void set_paused(bool on) { paused_.store(on); }
  [[nodiscard]] bool paused() const { return paused_.load(); }

  // Counts a logged-in client for SHOW POOLS (cl_active = clients not waiting for a server).
  void client_joined() { clients_.fetch_add(1, std::memory_order_relaxed); }
  void client_left() { clients_.fetch_sub(1, std::memory_order_relaxed); }

  [[nodiscard]] PoolStats stats() const;
  // Ids of the connections idle in this pool now (SHOW SERVERS: the rest are in use).
  [[nodiscard]] std::vector<std::uint64_t> idle_ids() const;
  // Traffic of this pool's clients: worker `w` adds to its own slot; totals sum them.
  TrafficCounters& traffic(int w) { return traffic_[static_cast<std::size_t>(w)]; }
  [[nodiscard]] TrafficTotals traffic_totals() const;
  // What a freshly logged-in server of this pool reports (ParameterStatus), cached from the
  // first login: what pgmux tells a client at login, before the client has a server.
  // nullopt until one server has logged in.
  [[nodiscard]] std::shared_ptr<const ParameterMap> welcome_parameters() const;
  [[nodiscard]] const std::string& database() const { return database_; }
  [[nodiscard]] const std::string& user() const { return user_; }
  // -1: the primary; otherwise the index of the replica this pool connects to.
  [[nodiscard]] int target() const { return target_; }
  // Connections leased right now (least_connections balancing).
  [[nodiscard]] int active_count() const {
    std::lock_guard lock(mutex_);
    return active_;
  }

 private:
  friend class ServerLease;

  void give_back(std::unique_ptr<ServerConnection> conn);
  void discard(std::unique_ptr<ServerConnection> conn);
  std::unique_ptr<ServerConnection> take_idle_locked(
      int worker, std::vector<std::unique_ptr<ServerConnection>>& expired);
  static bool expired(const ServerConnection& c, ServerConnection::Clock::time_point now,
                      Millis idle_timeout);
  awaitable<ServerLease> open_new(asio::io_context& io, int worker);
  // A failed open: starts the login retry window (failing the waiters when nothing is left
  // to wait for) or hands the slot to the next waiter.
  void record_failed_open(const PoolSettingsView& cfg, const std::string& sqlstate,
                          const std::string& message);
  // Counts a connection about to be opened against the pool size (plus the reserve when
  // `reserve` is set) and the shared budgets; false when any of them is spent.
  bool take_slot_locked(bool reserve);
  // A connection is gone for good: its slot returns to the pool and the budgets.
  void release_slot_locked();
  // After release_slot_locked, outside the lock: let other pools' waiters use the units.
  void notify_budgets();
  // Asks the other pools sharing a spent budget to close an idle connection.
  void reclaim_from_siblings();
  // Inside the server_login_retry_ms window after a failed login.
  bool login_blocked_locked() const;
  bool has_waiters() const;
  // Why a waiter is still without a connection, for its timeout error.
  std::string exhaustion_reason_locked() const;
  // The 53300 message after `wait` in the queue.
  std::string timeout_message_locked(Millis wait) const;
  void fail_waiters_locked(const std::string& sqlstate, const std::string& message);
  awaitable<ServerLease> acquire_once(asio::io_context& io, int worker, Millis wait);
  // What acquire_once found under the lock: an idle connection, a slot to open one, a place
  // in the queue, or the cached login failure; and expired connections to close outside it.
  struct AcquirePlan {
    std::unique_ptr<ServerConnection> conn;
    std::shared_ptr<Waiter> waiter;
    std::vector<std::unique_ptr<ServerConnection>> expired;
    std::optional<ServerError> login_failure;
    bool open = false;
    bool budget_blocked = false;
  };
  AcquirePlan plan_acquire(asio::io_context& io, int worker, const PoolSettingsView& cfg);
  // A queued client waited reserve_pool_timeout_ms: a reserve slot for it, if there is one.
  bool take_reserve_slot_locked(const std::shared_ptr<Waiter>& waiter, const PoolSettingsView& cfg);
  // acquire_checked() again while the server is unavailable (refusing, restarting), for up
  // to the pool's server_wait; its error then names primary_wait_ms.
  awaitable<ServerLease> acquire_through_restart(asio::io_context& io, int worker, Millis wait);
  // acquire() without the wait-time accounting: idle connections checked before use.
  awaitable<ServerLease> acquire_checked(asio::io_context& io, int worker, Millis wait);
  // Runs the check query on a connection idle past check_delay; false when it failed.
  awaitable<bool> still_alive(ServerConnection& conn);
  // A connection taken from an idle list: moved to `worker`'s event loop if another's.
  void bind_to(ServerConnection& conn, asio::io_context& io, int worker);
  // False (and the lease discarded) when a reused connection was closed or spoke while idle.
  static bool quiet_while_idle(ServerLease& lease);
  void wake_locked(const std::shared_ptr<Waiter>& w);
  // Takes the waiter a connection given back on `worker` goes to (waiters_ not empty).
  std::shared_ptr<Waiter> pop_waiter_for_locked(int worker);

  const std::string database_, user_;
  ServerLogin login_;  // under mutex_: RELOAD may move the pool to another server
  // Replaced whole on RELOAD; each operation works with the snapshot it loaded.
  std::atomic<std::shared_ptr<const PoolSettingsView>> settings_;
  // What every lease and hand-back reads of settings_, copied under mutex_ when it changes:
  // loading an atomic shared_ptr is a locked read-modify-write of a line all workers share.
  struct HotSettings {
    int size = 1;
    Millis idle_timeout{0};
    bool check = false;  // check_query is set
    Millis check_delay{0};
  };
  HotSettings hot_;  // under mutex_
  void set_hot_locked(const PoolSettingsView& s) {
    hot_ = {s.size, s.idle_timeout, !s.check_query.empty(), s.check_delay};
  }
  std::atomic<std::uint64_t>& server_ids_;
  const std::vector<std::shared_ptr<ConnectionBudget>> budgets_;
  const int target_;
  std::unique_ptr<TrafficCounters[]> traffic_;
  std::size_t workers_;

  mutable std::mutex mutex_;
  std::vector<std::vector<std::unique_ptr<ServerConnection>>> idle_;  // per worker, LIFO
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::shared_ptr<const ParameterMap> welcome_;  // shared by every client's ReportedParameters
  std::atomic<int> clients_{0};
  std::atomic<bool> paused_{false};
  std::atomic<int> held_by_pause_{0};  // clients waiting because the pool is paused
  // Bumped by fail_waiters: a client held by a pause since before gives up with kill_error_.
  std::atomic<std::uint64_t> kills_{0};
  std::string kill_state_, kill_message_;  // under mutex_
  int total_ = 0;                          // open + opening; never above settings_.size
  int active_ = 0;
  int connecting_ = 0;
  std::uint64_t total_acquired_ = 0;
  std::uint64_t total_timeouts_ = 0;
  std::atomic<std::uint64_t> total_moves_{0};
  std::minstd_rand rng_{std::random_device{}()};
  // The last failed login, for server_login_retry_ms.
  bool login_failing_ = false;
  std::chrono::steady_clock::time_point login_retry_at_;  // when a new login may be tried
  std::string login_error_state_, login_error_message_;
  std::function<bool()> answering_;  // replica pools only
  std::function<bool()> fenced_;     // the primary's pool only
  // When the lag monitor last sampled this pool's server (steady clock, ns; 0: never).
  std::function<std::int64_t()> server_sampled_at_ns_;
  std::int64_t login_failed_at_ns_ = 0;          // the last failed login (steady clock, ns)
  static constexpr Millis kAnsweringCheck{100};  // looked at this often while a login runs
};

}  // namespace pgmux::pooler
