// The running pgmux process: the listener on the main thread, `workers` threads each with its
// own io_context, and the services sessions share (config snapshot, pools, cancel registry,
// counters). Owns signal handling and the shutdown sequence.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "lag_monitor/lag_monitor.hpp"
#include "pooler/admin/metrics.hpp"
#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"
#include "pooler/net/buffer_pool.hpp"
#include "pooler/net/slab.hpp"
#include "pooler/pool/cancel_registry.hpp"
#include "pooler/pool/pool_registry.hpp"
#include "pooler/pool/sqlstate_class.hpp"
#include "pooler/service_notify.hpp"
#include "pooler/session/auth_query.hpp"
#include "pooler/session/client_registry.hpp"
#include "pooler/session/dormant_clients.hpp"
#include "pooler/session/replica_read_watch.hpp"
#include "router/classification_cache.hpp"

namespace pgmux::pooler {

// An event loop whose shutdown() the runtime may call itself: it destroys the coroutine frames
// still parked in the loop (and with them the leases they hold, which go back to their pools)
// while the loop's services stay, so sockets can still be closed on it afterwards.
class EventLoop : public asio::io_context {
 public:
  EventLoop() : asio::io_context(1) {}
  using asio::execution_context::shutdown;
};

struct Worker {
  explicit Worker(int i)
      : index(i), buffers(BufferPool::of(io.get_executor())), dormant(DormantClients::of(io)) {
    dormant.use_slabs(slabs);
  }
  int index;
  // Transaction sessions and parked waits (net/slab.hpp); declared before the event loop,
  // whose destruction frees what its pending handlers hold.
  SlabSet slabs;
  // Replica reads not yet answered (replica_read_timeout_ms); outlives the sessions in `io`.
  ReplicaReadWatch replica_reads;
  EventLoop io;
  BufferPool& buffers;      // receive buffers lent to this worker's sockets
  DormantClients& dormant;  // this worker's parked and dormant clients
  std::thread thread;
  std::atomic<int> clients{0};
  std::atomic<std::uint64_t> heartbeat{0};  // the watchdog's last tick this loop ran
  // Where clients closing after a fatal error discard their remaining input: one for the
  // worker, since nothing written there is ever read (its handlers run on one thread).
  std::array<char, 4096> discarded_input{};
  // Read/write routing: classifications by statement text, for this worker's clients only.
  router::ClassificationCache classifications;
};

class Runtime {
 public:
  explicit Runtime(std::shared_ptr<const Config> config);
  ~Runtime();

  // Binds, serves until SIGTERM (graceful) or SIGINT (immediate); returns the exit code.
  int run();

  [[nodiscard]] std::shared_ptr<const Config> config() const { return std::atomic_load(&config_); }
  PoolRegistry& pools() { return pools_; }
  AuthQueryCache& auth_queries() { return auth_queries_; }
  CancelRegistry& cancels() { return cancels_; }
  ClientRegistry& clients() { return client_registry_; }
  // Client-connection accounting for max_client_conn; returns false when over the limit.
  bool admit_client();
  void release_client();
  [[nodiscard]] int client_count() const { return clients_.load(); }
  // A connection accepted by the listener has logged in (client or console) or left.
  void login_ended() { logins_.fetch_sub(1); }
  // Admin console sessions open now (part of client_count, never in clients()).
  std::atomic<int>& console_sessions() { return consoles_; }
  // Listening for clients and not shutting down (/healthz).
  [[nodiscard]] bool accepting() const { return !draining_.load() && acceptor_.is_open(); }
  [[nodiscard]] std::uint64_t next_client_id() { return ++client_ids_; }
  // Forwards a CancelRequest to the server the client is running on, if any.
  // `from_peer`: passed on by another instance, so it is looked up here and never forwarded.
  awaitable<void> forward_cancel(const CancelKey& key, bool from_peer = false);
  // Cancel requests refused for a wrong secret or an unknown key (/metrics).
  [[nodiscard]] std::uint64_t failed_cancels() const { return failed_cancels_.load(); }
  // Cancel requests passed on to the fleet instance whose key they carry (/metrics).
  [[nodiscard]] std::uint64_t peer_cancels() const { return peer_cancels_.load(); }
  // The random key of this process's made-up SCRAM secrets for unknown users.
  [[nodiscard]] const std::string& instance_key() const { return instance_key_; }
  // A CancelRequest for a server pgmux is closing in the middle of a request (its client
  // vanished, or a replica stopped answering): the backend stops working for nobody. No lease
  // check: the connection is closed, so the backend serves no other client.
  awaitable<void> cancel_abandoned_server(CancelTarget target);
  // A cancel on behalf of the client `key`, valid while it holds its lease `lease`.
  struct Delivery {
    CancelKey key;
    std::uint64_t lease = 0;
  };
  // One CancelRequest to a server, over TLS when `tls_mode` asks for it, unless `for_client`
  // has given up its lease by the time the connection is up. False then.
  awaitable<bool> send_cancel(const CancelTarget& target, TlsMode tls_mode, const TlsContext* tls,
                              const std::optional<Delivery>& for_client);
  // How a graceful shutdown waits. Both stop accepting at once.
  enum class Drain : std::uint8_t {
    // SHUTDOWN WAIT_FOR_CLIENTS: until every client has left on its own (no time limit).
    for_clients,
    // SIGTERM, SHUTDOWN WAIT_FOR_SERVERS: clients are closed (FATAL 57P01) as soon as they
    // hold no server; running transactions and session-mode clients finish, bounded by
    // shutdown_timeout_ms.
    for_servers,
  };
  void request_shutdown(Drain how) {
    asio::post(main_io_, [this, how] { begin_graceful_shutdown(how); });
  }
  // SHUTDOWN, SIGINT: exit now; the kernel closes every socket.
  [[noreturn]] void exit_now(const char* why);
  // SUSPEND: new connections stay in the listen backlog until RESUME (pools are paused by the
  // caller). Returns false when already suspended / not suspended.
  bool set_suspended(bool on);
  [[nodiscard]] bool suspended() const { return suspended_.load(); }
  // DISABLE/ENABLE db: new logins to a disabled database are refused (57P03).
  void set_disabled(const std::string& database, bool on) {
    std::lock_guard lock(disabled_mutex_);
    if (on) {
      disabled_.insert(database);
    } else {
      disabled_.erase(database);
    }
  }
  [[nodiscard]] bool disabled(const std::string& database) const {
    std::lock_guard lock(disabled_mutex_);
    return disabled_.contains(database);
  }
  [[nodiscard]] bool draining() const { return draining_.load(); }
  // Re-reads the config file (RELOAD, SIGHUP): new logins use it, existing pools take its
  // sizes, limits and timeouts; connected clients stay. Returns "" or the config error (the
  // running configuration then stays). Settings that need a restart are logged as such.
  std::string reload();
  // SET key = value from the admin console: the running configuration with one global setting
  // changed, validated as the file would be. Empty sqlstate: applied.
  struct SetResult {
    std::string sqlstate, message;
  };
  SetResult set_setting(std::string_view key, std::string_view value);
  // Traffic since start per database (all its pools), and the last completed stats period's
  // change (for averages) with its length in seconds.
  [[nodiscard]] std::map<std::string, TrafficTotals> traffic_by_database();
  struct StatsPeriod {
    std::map<std::string, TrafficTotals> delta;
    double seconds = 0;
  };
  [[nodiscard]] StatsPeriod last_stats_period() const;
  // FATAL errors pgmux itself ended client sessions with (login refused, pool timeout, KILL…),
  // by SQLSTATE class, and failed authentications among them (/metrics).
  void count_fatal(std::string_view sqlstate) {
    fatal_errors_[sqlstate_class_index(sqlstate)].fetch_add(1, std::memory_order_relaxed);
    if (sqlstate == "28P01" || sqlstate == "28000") {
      auth_failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  [[nodiscard]] std::uint64_t fatal_errors(std::size_t cls) const {
    return fatal_errors_[cls].load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t auth_failures() const { return auth_failures_.load(); }
  // Receive buffers of every worker (SHOW MEM, /metrics).
  [[nodiscard]] BufferStats buffer_stats() const {
    BufferStats sum;
    for (const auto& w : workers_) sum += w->buffers.stats();
    return sum;
  }
  // Active-session state blocks of every worker: lent and free (SHOW MEM, /metrics).
  [[nodiscard]] std::pair<std::size_t, std::size_t> turn_state_stats() const;
  // Clients asleep on every worker (session/dormant_clients.hpp).
  [[nodiscard]] std::size_t dormant_clients() const {
    std::size_t sum = 0;
    for (const auto& w : workers_) sum += w->dormant.dormant();
    return sum;
  }
  // How many times a client went dormant, since start.
  [[nodiscard]] std::uint64_t dozed_clients() const {
    std::uint64_t sum = 0;
    for (const auto& w : workers_) sum += w->dormant.dozed();
    return sum;
  }
  // Sends an unstructured log line once per coroutine failure.
  static void log_exception(const char* where, std::exception_ptr e);

 private:
  awaitable<void> accept_loop();
  awaitable<void> sweep_loop(Worker& w);
  // Looks at the worker's unanswered replica reads every ReplicaReadWatch::kTick.
  awaitable<void> replica_watch_loop(Worker& w);
  // run()'s start: the listening socket (false, logged, when it cannot be had), then the
  // workers' threads and the loops of the main thread.
  bool listen(const GeneralSettings& g);
  static void warn_without_request_migration();
  // Pings systemd's watchdog while every worker answers (runtime_service.cpp).
  awaitable<void> watchdog_loop(std::chrono::microseconds period);
  void start_loops();
  void begin_graceful_shutdown(Drain how);
  void note_failed_cancel(const CancelKey& key, CancelRegistry::Miss miss);
  // The [peers] entry of the instance that issued `key`, when that is another one.
  [[nodiscard]] std::optional<Endpoint> owning_peer(const CancelKey& key) const;
  awaitable<void> forward_to_peer(const Endpoint& peer, const CancelKey& key);
  awaitable<bool> send_to_peer(const Endpoint& peer, const CancelKey& key);
  // roles = "auto": the lag monitor found `promoted`, a replica of `database`, promoted;
  // writes go there from now on (the configuration's primary moves, as a RELOAD would move
  // it, and stays moved through later RELOADs and SETs: keep_promotions).
  void follow_promotion(const std::string& database, const lag::MonitorTarget& promoted,
                        std::uint32_t timeline);
  // `fresh` with the primaries promoted at run time still in place, unless the file now names
  // them as primary or no longer lists them (under reload_mutex_).
  std::shared_ptr<const Config> keep_promotions(std::shared_ptr<const Config> fresh);
  // Over TLS as the target's database asks, bounded by server_connect_timeout_ms.
  // (Arguments by reference: by value inside a co_await miscompiles with GCC 12.)
  awaitable<void> deliver_cancel(const CancelTarget& target,
                                 const std::optional<Delivery>& for_client);
  // Makes `fresh` the running configuration; `what` (RELOAD, SET) names the cause in logs.
  void apply_config(const std::shared_ptr<const Config>& fresh, const char* what);
  // The drain after begin_graceful_shutdown: closes idle clients (for_servers), stops when no
  // client is left or at the deadline.
  awaitable<void> drain();
  void stop_all();
  // One lag monitor per database that routes reads to replicas, on the main thread's loop.
  void start_lag_monitors();

  std::shared_ptr<const Config> config_;
  // The event loops come first so that they are destroyed last: everything declared after
  // them (pools, registries, the main loop's services) holds sockets or timers on them.
  std::vector<std::unique_ptr<Worker>> workers_;
  PoolRegistry pools_;
  AuthQueryCache auth_queries_{pools_};
  CancelRegistry cancels_{config_->general.peer_id};
  ClientRegistry client_registry_;
  EventLoop main_io_;
  tcp::acceptor acceptor_{main_io_};
  std::atomic<int> clients_{0};
  std::atomic<int> logins_{0};  // accepted connections not yet logged in (nor gone)
  std::atomic<int> consoles_{0};
  std::atomic<std::uint64_t> client_ids_{0};
  std::atomic<bool> draining_{false};
  std::atomic<Drain> drain_{Drain::for_servers};
  std::atomic<bool> suspended_{false};
  std::array<std::atomic<std::uint64_t>, kSqlstateClasses> fatal_errors_{};
  std::atomic<std::uint64_t> auth_failures_{0};
  std::atomic<std::uint64_t> failed_cancels_{0};
  std::atomic<std::uint64_t> peer_cancels_{0};  // forwarded to the instance that owns the key
  std::mutex cancel_warning_mutex_;             // the rate limit of refused-cancel warnings
  std::chrono::steady_clock::time_point cancel_warning_window_{};
  int cancel_warnings_in_window_ = 0;
  // Random per process; random_nonce throws if the random source fails, so start-up stops.
  const std::string instance_key_ = protocol::random_nonce(32);
  std::size_t next_worker_ = 0;
  std::map<std::string, std::shared_ptr<lag::LagMonitor>> monitors_;  // by database; main thread
  std::unique_ptr<MetricsServer> metrics_;
  ServiceNotifier service_;                   // systemd's Type=notify
  std::mutex reload_mutex_;                   // one reload at a time
  std::map<std::string, Endpoint> promoted_;  // by database, under reload_mutex_
  mutable std::mutex disabled_mutex_;
  std::set<std::string> disabled_;
  // SHOW STATS averages: totals at the last two period ends.
  awaitable<void> stats_loop();
  mutable std::mutex stats_mutex_;
  std::map<std::string, TrafficTotals> stats_before_, stats_after_;
  std::chrono::steady_clock::time_point stats_before_at_, stats_after_at_;
};

}  // namespace pgmux::pooler
