// Traffic counters for SHOW STATS, SHOW PREPARED and /metrics. Each pool keeps one
// TrafficCounters per worker: a worker adds to its own slot (relaxed atomics, no sharing of
// cache lines), and readers sum the slots. TrafficMeter times one client's requests and
// transactions into a slot.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "pooler/pool/sqlstate_class.hpp"

namespace pgmux::pooler {

// Upper bounds (inclusive, µs) of the latency histogram buckets; one more bucket is +Inf.
inline constexpr std::array<std::uint64_t, 16> kLatencyBoundsUs = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
inline constexpr std::size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;
[[nodiscard]] inline std::size_t latency_bucket(std::uint64_t us) {
  return static_cast<std::size_t>(
      std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), us) -
      kLatencyBoundsUs.begin());
}

// Why a transaction-pooled client was pinned to its server (indexes PinReason; 0 unused).
inline constexpr std::size_t kPinReasons = 6;

struct TrafficTotals {
  std::uint64_t xact_count = 0, query_count = 0;
  std::uint64_t bytes_received = 0, bytes_sent = 0;  // from clients, to clients
  std::uint64_t xact_time_us = 0, query_time_us = 0;
  std::uint64_t wait_time_us = 0, wait_count = 0;  // waiting for a server connection
  // Named prepared statements under transaction pooling: Parse messages from clients, Parse
  // pgmux sent to servers (first use on that server or re-prepare), Bind messages, and uses
  // whose statement the server already had.
  std::uint64_t client_parse_count = 0, server_parse_count = 0, bind_count = 0;
  std::uint64_t prepared_hits = 0;
  std::array<std::uint64_t, kLatencyBuckets> query_hist{}, xact_hist{};  // per bucket
  std::array<std::uint64_t, kSqlstateClasses> errors{};  // ErrorResponses sent, by class
  std::array<std::uint64_t, kPinReasons> pins{};
  std::uint64_t pin_refusals = 0;  // pin_session_state = "error" refused a statement

  // Applies `op(mine, theirs)` to every counter, histogram bucket and class slot: sums and
  // deltas cannot miss a field.
  template <class Op>
  TrafficTotals& combine(const TrafficTotals& o, Op op) {
    for (auto field :
         {&TrafficTotals::xact_count, &TrafficTotals::query_count, &TrafficTotals::bytes_received,
          &TrafficTotals::bytes_sent, &TrafficTotals::xact_time_us, &TrafficTotals::query_time_us,
          &TrafficTotals::wait_time_us, &TrafficTotals::wait_count,
          &TrafficTotals::client_parse_count, &TrafficTotals::server_parse_count,
          &TrafficTotals::bind_count, &TrafficTotals::prepared_hits,
          &TrafficTotals::pin_refusals}) {
      op(this->*field, o.*field);
    }
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      op(query_hist[i], o.query_hist[i]);
      op(xact_hist[i], o.xact_hist[i]);
    }
    for (std::size_t i = 0; i < kSqlstateClasses; ++i) op(errors[i], o.errors[i]);
    for (std::size_t i = 0; i < kPinReasons; ++i) op(pins[i], o.pins[i]);
    return *this;
  }
  TrafficTotals& operator+=(const TrafficTotals& o) {
    return combine(o, [](std::uint64_t& a, std::uint64_t b) { a += b; });
  }
  // The change from `before` to this (SHOW STATS averages).
  [[nodiscard]] TrafficTotals minus(const TrafficTotals& before) const {
    TrafficTotals d = *this;
    d.combine(before, [](std::uint64_t& a, std::uint64_t b) { a -= b; });
    return d;
  }
};

struct alignas(64) TrafficCounters {
  using Counter = std::atomic<std::uint64_t>;
  Counter xact_count{0}, query_count{0}, bytes_received{0}, bytes_sent{0}, xact_time_us{0},
      query_time_us{0}, wait_time_us{0}, wait_count{0};
  Counter client_parse_count{0}, server_parse_count{0}, bind_count{0}, prepared_hits{0};
  std::array<Counter, kLatencyBuckets> query_hist{}, xact_hist{};
  std::array<Counter, kSqlstateClasses> errors{};
  std::array<Counter, kPinReasons> pins{};
  Counter pin_refusals{0};

  static void add(Counter& c, std::uint64_t v) { c.fetch_add(v, std::memory_order_relaxed); }
  // An ErrorResponse went to a client.
  void error(std::string_view sqlstate) { add(errors[sqlstate_class_index(sqlstate)], 1); }
  [[nodiscard]] TrafficTotals load() const {
    constexpr auto r = std::memory_order_relaxed;
    TrafficTotals t{xact_count.load(r),         query_count.load(r),  bytes_received.load(r),
                    bytes_sent.load(r),         xact_time_us.load(r), query_time_us.load(r),
                    wait_time_us.load(r),       wait_count.load(r),   client_parse_count.load(r),
                    server_parse_count.load(r), bind_count.load(r),   prepared_hits.load(r)};
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      t.query_hist[i] = query_hist[i].load(r);
      t.xact_hist[i] = xact_hist[i].load(r);
    }
    for (std::size_t i = 0; i < kSqlstateClasses; ++i) t.errors[i] = errors[i].load(r);
    for (std::size_t i = 0; i < kPinReasons; ++i) t.pins[i] = pins[i].load(r);
    t.pin_refusals = pin_refusals.load(r);
    return t;
  }
};

// One client's view: a request starts when it is sent with nothing outstanding; a query ends at
// each ReadyForQuery; a transaction ends at a ReadyForQuery with status Idle.
class TrafficMeter {
 public:
  using Clock = std::chrono::steady_clock;
  TrafficMeter() = default;
  explicit TrafficMeter(TrafficCounters* c) : c_(c) {}

  void request_sent(bool nothing_outstanding) {
    if (c_ == nullptr || !nothing_outstanding) return;
    query_start_ = Clock::now();
    query_open_ = true;
    if (!in_xact_) {
      xact_start_ = query_start_;
      in_xact_ = true;
    }
  }
  void ready_for_query(char status, bool all_answered) {
    if (c_ == nullptr) return;
    TrafficCounters::add(c_->query_count, 1);
    const auto now = Clock::now();
    if (all_answered && query_open_) {
      query_open_ = false;
      const std::uint64_t us = micros(now - query_start_);
      TrafficCounters::add(c_->query_time_us, us);
      TrafficCounters::add(c_->query_hist[latency_bucket(us)], 1);
    }
    if (status == 'I' && in_xact_) {
      const std::uint64_t us = micros(now - xact_start_);
      TrafficCounters::add(c_->xact_count, 1);
      TrafficCounters::add(c_->xact_time_us, us);
      TrafficCounters::add(c_->xact_hist[latency_bucket(us)], 1);
      in_xact_ = false;
    }
  }
  void received(std::uint64_t n) {
    if (c_ != nullptr) TrafficCounters::add(c_->bytes_received, n);
  }
  void sent(std::uint64_t n) {
    if (c_ != nullptr) TrafficCounters::add(c_->bytes_sent, n);
  }
  void error(std::string_view sqlstate) {
    if (c_ != nullptr) c_->error(sqlstate);
  }
  // Prepared statements (see TrafficTotals).
  void client_parse() { bump(&TrafficCounters::client_parse_count); }
  void server_parse() { bump(&TrafficCounters::server_parse_count); }
  void bind() { bump(&TrafficCounters::bind_count); }
  void prepared_hit() { bump(&TrafficCounters::prepared_hits); }
  void pinned(std::size_t reason) {
    if (c_ != nullptr && reason < kPinReasons) TrafficCounters::add(c_->pins[reason], 1);
  }
  void pin_refused() { bump(&TrafficCounters::pin_refusals); }

 private:
  void bump(TrafficCounters::Counter TrafficCounters::*field) {
    if (c_ != nullptr) TrafficCounters::add(c_->*field, 1);
  }
  static std::uint64_t micros(Clock::duration d) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  }
  TrafficCounters* c_ = nullptr;
  Clock::time_point query_start_, xact_start_;
  bool query_open_ = false;  // a request started and its answer has not ended yet
  bool in_xact_ = false;
};

}  // namespace pgmux::pooler
