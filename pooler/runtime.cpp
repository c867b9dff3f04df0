// Process lifecycle: workers, listener, signals, stats period, graceful and immediate shutdown.
// RELOAD and SET: runtime_reload.cpp.
#include "pooler/runtime.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "pooler/memory_release.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/turn_state.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

Runtime::Runtime(std::shared_ptr<const Config> config)
    : config_(std::move(config)), pools_(config_->worker_count()) {
  for (int i = 0; i < config_->worker_count(); ++i) workers_.push_back(std::make_unique<Worker>(i));
}

Runtime::~Runtime() {
  // Ownership order is the shutdown order. No loop runs any more; then the coroutines parked
  // in the loops die (their leases go back to the pools, their clients leave the registries);
  // then the pools close their idle server sockets, while the loops those sockets (and the
  // pools' timers) are registered with still exist; the loops themselves go last, as members
  // declared before everything that uses them.
  stop_all();
  main_io_.shutdown();
  // Twice: a coroutine destroyed on one loop may post to another loop already shut down (a
  // lease handed to a waiter there); the second pass destroys what was posted.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& w : workers_) w->io.shutdown();
  }
  metrics_.reset();
  monitors_.clear();
  pools_.for_each([](Pool& pool) { pool.close_idle(); });
}

std::pair<std::size_t, std::size_t> Runtime::turn_state_stats() const {
  std::pair<std::size_t, std::size_t> sum;
  for (const auto& w : workers_) {
    const TurnStatePool& pool = TurnStatePool::of(w->io.get_executor());
    sum.first += pool.lent();
    sum.second += pool.free();
  }
  return sum;
}

void Runtime::log_exception(const char* where, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{}: unexpected failure: {}", where, ex.what());
  } catch (...) {
    spdlog::error("{}: unexpected failure", where);
  }
}

bool Runtime::admit_client() {
  const int limit = config()->pool.max_client_conn;
  if (clients_.fetch_add(1) + 1 > limit) {
    clients_.fetch_sub(1);
    return false;
  }
  return true;
}

void Runtime::release_client() {
  clients_.fetch_sub(1);
}

void Runtime::start_loops() {
  for (auto& w : workers_) {
    w->thread = std::thread([&io = w->io] {
      auto guard = asio::make_work_guard(io);
      io.run();
    });
    asio::co_spawn(w->io, sweep_loop(*w), [](std::exception_ptr e) { log_exception("sweep", e); });
    asio::co_spawn(w->io, replica_watch_loop(*w),
                   [](std::exception_ptr e) { log_exception("replica watch", e); });
  }
  asio::co_spawn(main_io_, accept_loop(), [](std::exception_ptr e) { log_exception("accept", e); });
  start_lag_monitors();
  asio::co_spawn(main_io_, stats_loop(), [](std::exception_ptr e) { log_exception("stats", e); });
  asio::co_spawn(main_io_,
                 release_memory_after_departures([this] { return client_count(); },
                                                 [this] { return client_ids_.load(); },
                                                 [this] { return dozed_clients(); }),
                 [](std::exception_ptr e) { log_exception("memory release", e); });
}

int Runtime::run() {
  const auto cfg = config();
  const auto& g = cfg->general;
  if (!listen(g)) return 1;
  start_loops();
  if (!g.metrics_listen.empty()) {
    metrics_ = std::make_unique<MetricsServer>(main_io_, *this);
    if (!metrics_->start(g.metrics_listen, g.so_reuseport)) {
      stop_all();
      return 1;
    }
  }

  asio::signal_set signals(main_io_, SIGTERM, SIGINT);
  // SIGUSR1 pauses every pool (running transactions finish), SIGUSR2 resumes (and ends a
  // SUSPEND, which no new console connection could lift).
  asio::signal_set reload_signal(main_io_, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_reload =
      [&](const boost::system::error_code& err, int) {
        if (err) return;
        (void)reload();
        reload_signal.async_wait(on_reload);
      };
  reload_signal.async_wait(on_reload);
  asio::signal_set pause_signals(main_io_, SIGUSR1, SIGUSR2);
  std::function<void(const boost::system::error_code&, int)> on_pause_signal =
      [&](const boost::system::error_code& err, int sig) {
        if (err) return;
        const bool pause = sig == SIGUSR1;
        pools_.set_paused("", pause);
        if (!pause) set_suspended(false);  // as RESUME: also ends a SUSPEND
        spdlog::info("{}: {} all databases", pause ? "SIGUSR1" : "SIGUSR2",
                     pause ? "pausing" : "resuming");
        pause_signals.async_wait(on_pause_signal);
      };
  pause_signals.async_wait(on_pause_signal);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& err, int sig) {
        if (err) return;
        if (sig == SIGINT) exit_now("SIGINT");
        spdlog::info("SIGTERM: no longer accepting; waiting for {} client(s) to finish",
                     client_count());
        begin_graceful_shutdown(Drain::for_servers);
        signals.async_wait(on_signal);  // a second SIGINT still stops at once
      };
  signals.async_wait(on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::info("pgmux listening on {}:{} with {} worker(s)", g.listen_addr, g.listen_port,
               workers_.size());
  service_.ready(fmt::format("serving on {}:{}", g.listen_addr, g.listen_port));
  if (const auto period = service_.watchdog_period(); period.count() > 0) {
    asio::co_spawn(main_io_, watchdog_loop(period),
                   [](std::exception_ptr e) { log_exception("watchdog", e); });
  }
  main_io_.run();
  stop_all();
  spdlog::info("pgmux stopped");
  return 0;
}

void Runtime::exit_now(const char* why) {
  // Immediate exit: the kernel closes every socket; servers see their clients vanish.
  spdlog::info("{}: exiting now with {} client(s) connected", why, client_count());
  service_.stopping();
  spdlog::shutdown();
  std::_Exit(0);
}

bool Runtime::set_suspended(bool on) {
  if (suspended_.exchange(on) == on) return false;
  if (on) {
    // Abort the pending accept; the loop then waits until RESUME.
    asio::post(main_io_, [this] {
      boost::system::error_code ec;
      acceptor_.cancel(ec);
    });
  }
  return true;
}

awaitable<void> Runtime::accept_loop() {
  for (;;) {
    if (suspended_.load()) {
      // SUSPEND: connections wait in the kernel's listen backlog.
      Timer hold(main_io_, Millis(10));
      co_await hold.async_wait(as_result);
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    Worker& w = *workers_[next_worker_++ % workers_.size()];
    auto [ec, socket] = co_await acceptor_.async_accept(w.io, as_result);
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      if (ec == asio::error::operation_aborted) continue;  // SUSPEND
      spdlog::warn("accept failed: {}", ec.message());     // e.g. out of file descriptors
      Timer pause(main_io_, Millis(50));
      co_await pause.async_wait(as_result);
      continue;
    }
    boost::system::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    apply_tcp_keepalive(socket.native_handle(), config()->general.tcp_keepalive);
    logins_.fetch_add(1);  // until the session is logged in or gone (drain() waits for it)
    asio::co_spawn(w.io, run_client_session(*this, w, std::move(socket)),
                   [](std::exception_ptr e) { log_exception("client session", e); });
  }
}

awaitable<void> Runtime::sweep_loop(Worker& w) {
  Timer timer(w.io);
  for (;;) {
    timer.expires_after(Millis(1000));
    if (auto [ec] = co_await timer.async_wait(as_result); ec) co_return;
    for (const auto& pool : pools_.all()) pool->sweep(w.index);
    if (draining_) continue;
    for (const auto& pool : pools_.all()) co_await pool->top_up(w.io, w.index);
  }
}

awaitable<void> Runtime::replica_watch_loop(Worker& w) {
  Timer timer(w.io);
  for (;;) {
    // Without replicas (until a RELOAD adds some) nothing is watched: a slower beat.
    const auto cfg = config();
    const bool replicas = std::any_of(cfg->databases.begin(), cfg->databases.end(),
                                      [](const auto& db) { return !db.second.replicas.empty(); });
    timer.expires_after(replicas ? ReplicaReadWatch::kTick : Millis(1000));
    if (auto [ec] = co_await timer.async_wait(as_result); ec) co_return;
    if (!w.replica_reads.empty()) w.replica_reads.tick(std::chrono::steady_clock::now());
  }
}

std::map<std::string, TrafficTotals> Runtime::traffic_by_database() {
  std::map<std::string, TrafficTotals> out;
  for (const auto& pool : pools_.all()) out[pool->database()] += pool->traffic_totals();
  return out;
}

Runtime::StatsPeriod Runtime::last_stats_period() const {
  std::lock_guard lock(stats_mutex_);
  StatsPeriod p;
  if (stats_after_at_ == std::chrono::steady_clock::time_point{}) return p;
  p.seconds = std::chrono::duration<double>(stats_after_at_ - stats_before_at_).count();
  for (const auto& [db, after] : stats_after_) {
    TrafficTotals d = after;
    if (auto it = stats_before_.find(db); it != stats_before_.end()) d = after.minus(it->second);
    p.delta[db] = d;
  }
  return p;
}

awaitable<void> Runtime::stats_loop() {
  Timer timer(main_io_);
  {
    std::lock_guard lock(stats_mutex_);
    stats_before_at_ = std::chrono::steady_clock::now();
  }
  for (;;) {
    timer.expires_after(Millis(config()->general.stats_period_ms));
    if (auto [ec] = co_await timer.async_wait(as_result); ec) co_return;
    auto now = traffic_by_database();
    std::lock_guard lock(stats_mutex_);
    if (stats_after_at_ != std::chrono::steady_clock::time_point{}) {
      stats_before_ = std::move(stats_after_);
      stats_before_at_ = stats_after_at_;
    }
    stats_after_ = std::move(now);
    stats_after_at_ = std::chrono::steady_clock::now();
  }
}

void Runtime::start_lag_monitors() {
  const Config& cfg = *config_;
  for (const auto& [name, db] : cfg.databases) {
    if (db.replicas.empty()) continue;
    bool routed = db.routing.read_write_split || db.target == router::Target::replica;
    for (const auto& [uname, user] : cfg.users) {
      routed = routed || user.read_write_split.value_or(false);
    }
    if (!routed) continue;
    const UserConfig* login = cfg.find_user(cfg.routing.lag_monitor_user);
    if (login == nullptr) {
      spdlog::warn(
          "database {}: no user with a password to run the lag monitor as "
          "([routing] lag_monitor_user): replica lag is not checked",
          name);
      continue;
    }
    const RoutingSettings& r = db.routing;
    lag::MonitorSettings settings{
        .database = name,
        .dbname = db.dbname,
        .user = login->name,
        .password = login->server_password,
        .sslmode = to_string(db.server_tls.mode),
        .sslrootcert = db.server_tls.ca_file,
        .sslcert = db.server_tls.cert_file,
        .sslkey = db.server_tls.key_file,
        .interval = Millis(r.lag_check_interval_ms),
        // A login gets lag_stale_after_ms (at least a second: TLS and SCRAM take round
        // trips), never more than the pools' server_connect_timeout_ms.
        .connect_timeout = std::min(Millis(cfg.pool.server_connect_timeout_ms),
                                    std::max(Millis(r.lag_stale_after_ms), Millis(1000))),
        .query_timeout = Millis(r.lag_stale_after_ms),
        .keepalive_idle_s = cfg.general.tcp_keepalive.idle_s,
        .keepalive_interval_s = cfg.general.tcp_keepalive.interval_s,
        .keepalive_count = cfg.general.tcp_keepalive.count,
        .tcp_user_timeout_ms = cfg.general.server_tcp_user_timeout_ms,
        .limits = {.max_lag_ms = r.max_replica_lag_ms >= 0
                                     ? std::optional<std::int64_t>(r.max_replica_lag_ms)
                                     : std::nullopt,
                   .max_lag_bytes = r.max_replica_lag_bytes >= 0
                                        ? std::optional<std::int64_t>(r.max_replica_lag_bytes)
                                        : std::nullopt,
                   .readmit_ratio = r.readmit_ratio,
                   .stale_after = Millis(r.lag_stale_after_ms)}};
    std::vector<lag::MonitorTarget> replicas;
    for (const Endpoint& e : db.replicas) replicas.push_back({e.host, e.port});
    auto routing = pools_.routing(db);
    auto monitor = std::make_shared<lag::LagMonitor>(
        main_io_.get_executor(), lag::MonitorTarget{db.primary.host, db.primary.port},
        std::move(replicas), std::move(settings), routing->lag());
    if (db.follow_promotion) {
      monitor->on_promotion(
          [this, name = name](const lag::MonitorTarget& promoted, std::uint32_t timeline) {
            follow_promotion(name, promoted, timeline);
          });
      routing->set_follows_promotion([weak = std::weak_ptr<lag::LagMonitor>(monitor)] {
        if (auto m = weak.lock()) m->recheck_primary();
      });
    }
    routing->set_monitored([weak = std::weak_ptr<lag::LagMonitor>(monitor)] {
      if (auto m = weak.lock()) m->kick();
    });
    monitor->start();
    monitors_[name] = std::move(monitor);
  }
}

void Runtime::begin_graceful_shutdown(Drain how) {
  if (how == Drain::for_servers) drain_.store(how);  // a later SIGTERM tightens a WAIT_FOR_CLIENTS
  if (draining_.exchange(true)) return;
  service_.stopping();
  drain_.store(how);
  suspended_.store(false);
  boost::system::error_code ec;
  acceptor_.close(ec);  // /healthz now answers 503 until the metrics server stops
  asio::co_spawn(main_io_, drain(), [](std::exception_ptr e) { log_exception("shutdown", e); });
}

namespace {
constexpr auto kFirstRequestGrace = std::chrono::seconds(1);
}  // namespace

awaitable<void> Runtime::drain() {
  const auto deadline =
      std::chrono::steady_clock::now() + Millis(config()->general.shutdown_timeout_ms);
  Timer timer(main_io_);
  for (;;) {
    // Clients still logging in are not in the registry yet: they came before the listener
    // closed, and leaving now would cut them off mid-login. Read before the snapshot: a
    // session joins the registry before it stops counting as a login.
    const int logins = logins_.load();
    const auto clients = client_registry_.snapshot();
    if (clients.empty() && logins == 0) break;
    const bool for_servers = drain_.load() == Drain::for_servers;
    if (for_servers && std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("shutdown_timeout_ms reached with {} client(s) connected", clients.size());
      break;
    }
    if (for_servers) {
      // A client holding no server is between transactions: close it now. The kill re-checks
      // on the client's own worker, so a client that has just started a transaction is left
      // to finish it. One that has only just logged in has its first request on the way (a
      // connection per transaction, accepted as the drain began): it gets a moment to send it.
      const auto now = std::chrono::system_clock::now();
      for (const auto& c : clients) {
        if (c->state.load() == ClientState::idle &&
            (c->served.load() || now - c->connected_at >= kFirstRequestGrace)) {
          c->kill(kShutdownFarewell, true);
        }
      }
    }
    timer.expires_after(Millis(50));
    co_await timer.async_wait(as_result);
  }
  for (auto& [name, m] : monitors_) m->stop();
  stop_all();
}

void Runtime::stop_all() {
  main_io_.stop();
  for (auto& w : workers_) w->io.stop();
  for (auto& w : workers_) {
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
  }
}

}  // namespace pgmux::pooler
