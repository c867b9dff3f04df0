// libpq in non-blocking mode under Asio: PQconnectPoll / PQsendQuery / PQconsumeInput, waiting
// for socket readiness on a dup() of PQsocket (so Asio never closes libpq's descriptor).
#include "lag_monitor/lag_monitor.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>

namespace pgmux::lag {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

using Row = std::vector<std::optional<std::string>>;

class MonitorError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One libpq connection used from coroutines on a single executor.
class AsyncPg {
 public:
  explicit AsyncPg(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  ~AsyncPg() { close(); }
  AsyncPg(const AsyncPg&) = delete;
  AsyncPg& operator=(const AsyncPg&) = delete;

  awaitable<void> connect(const MonitorTarget& t, const MonitorSettings& s) {
    close();
    const std::string port = std::to_string(t.port);
    // The pools' TCP keepalive and user timeout, so a cut link fails the monitor's
    // connection too (its query deadline ends the wait; these free the socket).
    const std::string keepalives = s.keepalive_idle_s > 0 ? "1" : "0";
    const std::string idle = std::to_string(s.keepalive_idle_s);
    const std::string interval = std::to_string(s.keepalive_interval_s);
    const std::string count = std::to_string(s.keepalive_count);
    const std::string user_timeout = std::to_string(s.tcp_user_timeout_ms);
    // libpq ignores empty values: an unset certificate file stays unset.
    const char* keys[] = {"host",
                          "port",
                          "dbname",
                          "user",
                          "password",
                          "sslmode",
                          "sslrootcert",
                          "sslcert",
                          "sslkey",
                          "gssencmode",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          nullptr};
    const char* values[] = {t.host.c_str(),
                            port.c_str(),
                            s.dbname.c_str(),
                            s.user.c_str(),
                            s.password.c_str(),
                            s.sslmode.c_str(),
                            s.sslrootcert.c_str(),
                            s.sslcert.c_str(),
                            s.sslkey.c_str(),
                            "disable",
                            "pgmux lag monitor",
                            keepalives.c_str(),
                            idle.c_str(),
                            interval.c_str(),
                            count.c_str(),
                            user_timeout.c_str(),
                            nullptr};
    conn_ = PQconnectStartParams(keys, values, 0);
    if (conn_ == nullptr) throw MonitorError("out of memory");
    if (PQstatus(conn_) == CONNECTION_BAD) throw MonitorError(error());
    PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
    for (;;) {
      if (poll == PGRES_POLLING_OK) break;
      if (poll == PGRES_POLLING_FAILED) throw MonitorError(error());
      co_await wait(poll == PGRES_POLLING_WRITING);
      poll = PQconnectPoll(conn_);
    }
    if (PQsetnonblocking(conn_, 1) != 0) throw MonitorError(error());
  }

  // Runs one simple query and returns the rows of its single result.
  awaitable<std::vector<Row>> query(const char* sql) {
    if (PQsendQuery(conn_, sql) == 0) throw MonitorError(error());
    for (int f = PQflush(conn_); f != 0; f = PQflush(conn_)) {
      if (f < 0) throw MonitorError(error());
      co_await wait(true);
    }
    std::vector<Row> rows;
    std::string failure;
    for (;;) {
      while (PQisBusy(conn_) != 0) {
        co_await wait(false);
        if (PQconsumeInput(conn_) == 0) throw MonitorError(error());
      }
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) break;
      if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); ++i) {
          Row row;
          for (int j = 0; j < PQnfields(r); ++j) {
            if (PQgetisnull(r, i, j) != 0) {
              row.emplace_back(std::nullopt);
            } else {
              row.emplace_back(PQgetvalue(r, i, j));
            }
          }
          rows.push_back(std::move(row));
        }
      } else {
        const char* m = PQresultErrorMessage(r);
        failure = m != nullptr ? m : "query failed";
      }
      PQclear(r);
    }
    if (!failure.empty()) throw MonitorError(failure);
    co_return rows;
  }

  void close() {
    sock_.reset();
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    raw_fd_ = -1;
  }

 private:
  std::string error() const {
    std::string e = conn_ != nullptr ? PQerrorMessage(conn_) : "no connection";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    return e;
  }

  // Waits until libpq's socket is readable (or writable).
  awaitable<void> wait(bool write) {
    const int fd = PQsocket(conn_);
    if (fd < 0) throw MonitorError(error());
    if (fd != raw_fd_ || !sock_) {  // connecting may switch sockets (several addresses)
      sock_.reset();
      const int copy = ::dup(fd);
      if (copy < 0) throw MonitorError("dup() failed");
      sock_.emplace(ex_, copy);
      raw_fd_ = fd;
    }
    auto [ec] = co_await sock_->async_wait(write ? asio::posix::stream_descriptor::wait_write
                                                 : asio::posix::stream_descriptor::wait_read,
                                           kNoThrow);
    if (ec) throw MonitorError(ec.message());
  }

  asio::any_io_executor ex_;
  PGconn* conn_ = nullptr;
  int raw_fd_ = -1;
  std::optional<asio::posix::stream_descriptor> sock_;
};

// Runs `op` to completion as a value: `||` waits for the first operation that does not
// throw, so a failing `op` would otherwise lose to the timer and its error be masked.
template <class T>
awaitable<std::pair<std::exception_ptr, std::optional<T>>> settle(awaitable<T> op) {
  try {
    co_return std::pair{std::exception_ptr{}, std::optional<T>(co_await std::move(op))};
  } catch (...) {
    co_return std::pair{std::current_exception(), std::optional<T>{}};
  }
}

awaitable<std::exception_ptr> settle_void(awaitable<void> op) {
  try {
    co_await std::move(op);
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

// `op`, or MonitorError("… timed out") if `limit` passes first (the operation is cancelled).
awaitable<void> bounded(awaitable<void> op, std::chrono::milliseconds limit, const char* what) {
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  auto result = co_await (settle_void(std::move(op)) || timer.async_wait(kNoThrow));
  if (result.index() == 1) throw MonitorError(std::string(what) + " timed out");
  if (auto e = std::get<0>(result)) std::rethrow_exception(e);
}

template <class T>
awaitable<T> bounded(awaitable<T> op, std::chrono::milliseconds limit, const char* what) {
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  auto result = co_await (settle(std::move(op)) || timer.async_wait(kNoThrow));
  if (result.index() == 1) throw MonitorError(std::string(what) + " timed out");
  auto& [error, value] = std::get<0>(result);
  if (error) std::rethrow_exception(error);
  co_return std::move(*value);
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

constexpr const char* kPrimaryQuery = "SELECT pg_catalog.pg_current_wal_lsn()";
constexpr const char* kReplicaQuery =
    "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.pg_last_wal_receive_lsn(), "
    "pg_catalog.pg_last_wal_replay_lsn(), "
    "(extract(epoch FROM clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp()) * "
    "1000)::bigint";

}  // namespace

struct LagMonitor::Impl {
  asio::any_io_executor ex;
  MonitorTarget primary;
  std::vector<MonitorTarget> replicas;
  MonitorSettings settings;
  std::shared_ptr<LagState> state;
  bool stopped = false;
  bool primary_moved = false;  // set_primary: reconnect to the new primary
  std::vector<std::unique_ptr<asio::steady_timer>> replica_timers;
  std::unique_ptr<asio::steady_timer> primary_timer;

  std::string label(const MonitorTarget& t) const {
    return "database " + settings.database + ": lag monitor " + t.host + ":" +
           std::to_string(t.port);
  }

  // Sleeps for `d` (or until kicked/stopped); false once stopped.
  awaitable<bool> pause(asio::steady_timer& timer, std::chrono::milliseconds d) {
    timer.expires_after(d);
    co_await timer.async_wait(kNoThrow);
    co_return !stopped;
  }

  std::optional<Lsn> fresh_primary_lsn() const {
    const auto at = state->primary_sampled_at_ns.load();
    if (at == 0) return std::nullopt;
    if (now_ns() - at >
        std::chrono::duration_cast<std::chrono::nanoseconds>(settings.limits.stale_after).count()) {
      return std::nullopt;
    }
    return state->primary_lsn.load();
  }

  awaitable<void> primary_loop() {
    AsyncPg pg(ex);
    auto backoff = std::chrono::milliseconds(100);
    bool connected = false, failing = false;
    while (!stopped) {
      if (primary_moved) {
        primary_moved = false;
        pg.close();
        connected = failing = false;
        backoff = std::chrono::milliseconds(100);
      }
      try {
        if (!connected) {
          co_await bounded(pg.connect(primary, settings), settings.connect_timeout, "connect");
          connected = true;
          failing = false;
          backoff = std::chrono::milliseconds(100);
          spdlog::info("{}: connected to the primary", label(primary));
        }
        auto rows = co_await bounded(pg.query(kPrimaryQuery), settings.query_timeout, "query");
        state->primary_samples.fetch_add(1, std::memory_order_relaxed);
        if (!rows.empty() && rows[0][0]) {
          if (auto lsn = parse_lsn(*rows[0][0])) {
            state->primary_lsn.store(*lsn);
            state->primary_sampled_at_ns.store(now_ns());
          }
        }
        if (!co_await pause(*primary_timer, settings.interval)) break;
      } catch (const std::exception& e) {
        // Once per outage: when a working connection breaks, or the first attempt fails.
        if (!stopped && (connected || !failing)) {
          spdlog::warn("{}: {}; retrying with back-off", label(primary), e.what());
        }
        failing = true;
        connected = false;
        pg.close();
      }
      if (connected) continue;
      if (!co_await pause(*primary_timer, backoff)) break;
      backoff = std::min(backoff * 2, settings.max_backoff);
    }
  }

  awaitable<void> replica_loop(int i) {
    const MonitorTarget& target = replicas[static_cast<std::size_t>(i)];
    ReplicaLagState& out = state->replica(i);
    asio::steady_timer& timer = *replica_timers[static_cast<std::size_t>(i)];
    AsyncPg pg(ex);
    EligibilityTracker tracker;
    std::optional<ReplicaSample> last;
    auto backoff = std::chrono::milliseconds(100);
    bool connected = false, failing = false;
    auto publish = [&] {
      const bool changed = tracker.update(last, settings.limits, Clock::now());
      const LagReading r = tracker.reading();
      out.lag_bytes.store(r.bytes);
      out.lag_ms.store(r.ms);
      out.reason.store(tracker.reason());
      out.eligible.store(tracker.eligible());
      if (changed) {
        if (tracker.eligible()) {
          spdlog::info("{}: replica eligible for reads (lag {} bytes, {} ms)", label(target),
                       r.bytes, r.ms);
        } else {
          spdlog::warn("{}: replica excluded from reads: {} (lag {} bytes, {} ms)", label(target),
                       to_string(tracker.reason()), r.bytes, r.ms);
        }
      }
    };
    while (!stopped) {
      try {
        if (!connected) {
          co_await bounded(pg.connect(target, settings), settings.connect_timeout, "connect");
          connected = true;
          failing = false;
          backoff = std::chrono::milliseconds(100);
        }
        auto rows = co_await bounded(pg.query(kReplicaQuery), settings.query_timeout, "query");
        out.samples.fetch_add(1, std::memory_order_relaxed);
        if (rows.empty() || rows[0].size() != 4) throw MonitorError("unexpected answer");
        const Row& row = rows[0];
        ReplicaSample s;
        s.taken_at = Clock::now();
        s.in_recovery = row[0] && *row[0] == "t";
        s.receive_lsn = row[1] ? parse_lsn(*row[1]).value_or(0) : 0;
        s.replay_lsn = row[2] ? parse_lsn(*row[2]).value_or(0) : 0;
        if (row[3]) s.since_last_replay_ms = std::stoll(*row[3]);
        s.primary_lsn = fresh_primary_lsn();
        last = s;
        out.replay_lsn.store(s.replay_lsn);
        out.sampled_at_ns.store(now_ns());
        publish();
        state->generation.fetch_add(1, std::memory_order_release);
        if (!co_await pause(timer, settings.interval)) break;
      } catch (const std::exception& e) {
        // Once per outage: when a working connection breaks, or the first attempt fails.
        if (!stopped && (connected || !failing)) {
          spdlog::warn("{}: {}; retrying with back-off", label(target), e.what());
        }
        failing = true;
        connected = false;
        pg.close();
        last.reset();
        publish();
      }
      if (connected) continue;
      if (!co_await pause(timer, backoff)) break;
      backoff = std::min(backoff * 2, settings.max_backoff);
    }
  }
};

LagMonitor::LagMonitor(asio::any_io_executor ex, MonitorTarget primary,
                       std::vector<MonitorTarget> replicas, MonitorSettings settings,
                       std::shared_ptr<LagState> state)
    : impl_(std::make_unique<Impl>()) {
  impl_->ex = std::move(ex);
  impl_->primary = std::move(primary);
  impl_->replicas = std::move(replicas);
  impl_->settings = std::move(settings);
  impl_->state = std::move(state);
  impl_->state->stale_after_ns.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(impl_->settings.limits.stale_after)
          .count());
  impl_->primary_timer = std::make_unique<asio::steady_timer>(impl_->ex);
  for (std::size_t i = 0; i < impl_->replicas.size(); ++i) {
    impl_->replica_timers.push_back(std::make_unique<asio::steady_timer>(impl_->ex));
  }
}

LagMonitor::~LagMonitor() = default;

void LagMonitor::start() {
  auto self = shared_from_this();
  auto log = [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("lag monitor: unexpected failure: {}", ex.what());
    }
  };
  asio::co_spawn(
      impl_->ex, [self]() -> awaitable<void> { co_await self->impl_->primary_loop(); }, log);
  for (int i = 0; i < static_cast<int>(impl_->replicas.size()); ++i) {
    asio::co_spawn(
        impl_->ex, [self, i]() -> awaitable<void> { co_await self->impl_->replica_loop(i); }, log);
  }
}

void LagMonitor::stop() {
  asio::post(impl_->ex, [self = shared_from_this()] {
    self->impl_->stopped = true;
    self->impl_->primary_timer->cancel();
    for (auto& t : self->impl_->replica_timers) t->cancel();
  });
}

void LagMonitor::set_primary(MonitorTarget primary) {
  asio::post(impl_->ex, [self = shared_from_this(), primary = std::move(primary)] {
    spdlog::info("database {}: lag monitor now watches the primary at {}:{}",
                 self->impl_->settings.database, primary.host, primary.port);
    self->impl_->primary = primary;
    self->impl_->primary_moved = true;
    self->impl_->primary_timer->cancel();
  });
}

void LagMonitor::kick() {
  asio::post(impl_->ex, [self = shared_from_this()] {
    for (auto& t : self->impl_->replica_timers) t->cancel();
  });
}

}  // namespace pgmux::lag
