// The lag monitor's sampling loops (one per server) over AsyncPg connections.
#include "lag_monitor/lag_monitor.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>
#include <vector>

#include "lag_monitor/async_pg.hpp"
#include "lag_monitor/primary_election.hpp"

namespace pgmux::lag {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

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

// The timeline of a server out of recovery: the first 8 hex digits of its current WAL file's
// name (pg_control_checkpoint() learns of a promotion only at the next checkpoint).
#define PGMUX_TIMELINE                                       \
  "CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE " \
  "substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8) END"
constexpr const char* kPrimaryQuery =
    "SELECT pg_catalog.pg_is_in_recovery(), CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
    "ELSE pg_catalog.pg_current_wal_lsn() END, " PGMUX_TIMELINE;
constexpr const char* kReplicaQuery =
    "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.pg_last_wal_receive_lsn(), "
    "pg_catalog.pg_last_wal_replay_lsn(), "
    "(extract(epoch FROM clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp()) * "
    "1000)::bigint, " PGMUX_TIMELINE;
#undef PGMUX_TIMELINE

std::uint32_t parse_timeline(const std::optional<std::string>& hex) {
  if (!hex || hex->empty()) return 0;
  try {
    return static_cast<std::uint32_t>(std::stoul(*hex, nullptr, 16));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

struct LagMonitor::Impl {
  asio::any_io_executor ex;
  MonitorTarget primary;
  std::vector<MonitorTarget> replicas;
  MonitorSettings settings;
  std::shared_ptr<LagState> state;
  bool stopped = false;
  bool primary_moved = false;  // set_primary: reconnect to the new primary
  std::function<void(const MonitorTarget&, std::uint32_t)> promoted;  // roles = "auto"
  std::optional<int> reported;  // the promotion last reported, until set_primary
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

  // Its queries read only functions every role may call: a superuser login is a needless
  // risk (its password in pgmux's config opens everything). Said once per monitor.
  bool superuser_warned = false;
  void warn_if_superuser(const AsyncPg& pg) {
    if (superuser_warned || !pg.superuser()) return;
    superuser_warned = true;
    spdlog::warn(
        "database {}: the lag monitor logs in as {}, a superuser; its queries need no "
        "privileges: a role with LOGIN only is enough ([routing] lag_monitor_user)",
        settings.database, settings.user);
  }

  // What the primary's sample said of recovery; a change is logged once.
  void note_primary_recovery(bool in_recovery) {
    if (state->primary_in_recovery.exchange(in_recovery) == in_recovery) return;
    if (!in_recovery) {
      spdlog::info("{}: the primary left recovery", label(primary));
    } else if (promoted) {
      spdlog::warn(
          "{}: the primary is in recovery (demoted, or back as a standby): writes "
          "wait for a promoted server (roles = \"auto\")",
          label(primary));
    } else {
      spdlog::warn("{}: the primary is in recovery (a standby): writes to it fail with 25006",
                   label(primary));
    }
  }

  // roles = "auto": after each sample, whether a promoted replica should take the writes.
  void elect() {
    if (!promoted) return;
    const std::int64_t now = now_ns();
    const std::int64_t stale = state->stale_after_ns.load();
    auto fresh = [&](std::int64_t at) { return at != 0 && (stale <= 0 || now - at <= stale); };
    const ServerRole current{.fresh = fresh(state->primary_answered_at_ns.load()),
                             .in_recovery = state->primary_in_recovery.load(),
                             .timeline = state->primary_timeline.load()};
    std::vector<ServerRole> roles;
    int current_replica = -1;
    for (int i = 0; i < static_cast<int>(replicas.size()); ++i) {
      const ReplicaLagState& r = state->replica(i);
      const std::uint32_t timeline = r.timeline.load();
      roles.push_back({.fresh = fresh(r.sampled_at_ns.load()),
                       .in_recovery = timeline == 0,
                       .timeline = timeline});
      const MonitorTarget& t = replicas[static_cast<std::size_t>(i)];
      if (t.host == primary.host && t.port == primary.port) current_replica = i;
    }
    const std::optional<int> winner = promoted_replica(current, current_replica, roles);
    if (!winner || winner == reported) return;
    const auto i = static_cast<std::size_t>(*winner);
    promoted(replicas[i], roles[i].timeline);
    reported = winner;  // (after: a promotion that could not be applied is reported again)
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
          warn_if_superuser(pg);
        }
        auto rows = co_await bounded(pg.query(kPrimaryQuery), settings.query_timeout, "query");
        if (primary_moved) continue;  // the old primary's answer: not the new one's
        state->primary_samples.fetch_add(1, std::memory_order_relaxed);
        if (rows.empty() || rows[0].size() != 3) throw MonitorError("unexpected answer");
        const Row& row = rows[0];
        note_primary_recovery(row[0] && *row[0] == "t");
        state->primary_timeline.store(parse_timeline(row[2]));
        if (row[1]) {
          if (auto lsn = parse_lsn(*row[1])) {
            state->primary_lsn.store(*lsn);
            state->primary_sampled_at_ns.store(now_ns());
          }
        }
        state->primary_answered_at_ns.store(now_ns());
        elect();
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
        if (rows.empty() || rows[0].size() != 5) throw MonitorError("unexpected answer");
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
        out.timeline.store(s.in_recovery ? 0 : parse_timeline(row[4]));
        out.sampled_at_ns.store(now_ns());
        publish();
        elect();
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
  // What was seen of the old primary says nothing of the new one (a demoted primary's
  // recovery would fence the promoted server until its first sample).
  impl_->state->primary_in_recovery.store(false);
  impl_->state->primary_answered_at_ns.store(0);
  impl_->state->primary_timeline.store(0);
  asio::post(impl_->ex, [self = shared_from_this(), primary = std::move(primary)] {
    spdlog::info("database {}: lag monitor now watches the primary at {}:{}",
                 self->impl_->settings.database, primary.host, primary.port);
    self->impl_->primary = primary;
    self->impl_->primary_moved = true;
    self->impl_->reported.reset();
    self->impl_->primary_timer->cancel();
  });
}

void LagMonitor::on_promotion(std::function<void(const MonitorTarget&, std::uint32_t)> promoted) {
  impl_->promoted = std::move(promoted);
}

void LagMonitor::recheck_primary() {
  asio::post(impl_->ex, [self = shared_from_this()] {
    if (self->impl_->primary_timer) self->impl_->primary_timer->cancel();
  });
}

void LagMonitor::kick() {
  asio::post(impl_->ex, [self = shared_from_this()] {
    for (auto& t : self->impl_->replica_timers) t->cancel();
  });
}

}  // namespace pgmux::lag
