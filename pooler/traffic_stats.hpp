// Traffic counters for SHOW STATS and /metrics. Each pool keeps one TrafficCounters per worker:
// a worker adds to its own slot (relaxed atomics, no sharing of cache lines), and readers sum
// the slots. TrafficMeter times one client's requests and transactions into a slot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pgmux::pooler {

struct TrafficTotals {
  std::uint64_t xact_count = 0, query_count = 0;
  std::uint64_t bytes_received = 0, bytes_sent = 0;  // from clients, to clients
  std::uint64_t xact_time_us = 0, query_time_us = 0;
  std::uint64_t wait_time_us = 0, wait_count = 0;  // waiting for a server connection

  TrafficTotals& operator+=(const TrafficTotals& o) {
    xact_count += o.xact_count;
    query_count += o.query_count;
    bytes_received += o.bytes_received;
    bytes_sent += o.bytes_sent;
    xact_time_us += o.xact_time_us;
    query_time_us += o.query_time_us;
    wait_time_us += o.wait_time_us;
    wait_count += o.wait_count;
    return *this;
  }
};

struct alignas(64) TrafficCounters {
  std::atomic<std::uint64_t> xact_count{0}, query_count{0}, bytes_received{0}, bytes_sent{0},
      xact_time_us{0}, query_time_us{0}, wait_time_us{0}, wait_count{0};

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t v) {
    c.fetch_add(v, std::memory_order_relaxed);
  }
  [[nodiscard]] TrafficTotals load() const {
    constexpr auto r = std::memory_order_relaxed;
    return {xact_count.load(r),   query_count.load(r),  bytes_received.load(r),
            bytes_sent.load(r),   xact_time_us.load(r), query_time_us.load(r),
            wait_time_us.load(r), wait_count.load(r)};
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
    if (!in_xact_) {
      xact_start_ = query_start_;
      in_xact_ = true;
    }
  }
  void ready_for_query(char status, bool all_answered) {
    if (c_ == nullptr) return;
    TrafficCounters::add(c_->query_count, 1);
    const auto now = Clock::now();
    if (all_answered) TrafficCounters::add(c_->query_time_us, micros(now - query_start_));
    if (status == 'I' && in_xact_) {
      TrafficCounters::add(c_->xact_count, 1);
      TrafficCounters::add(c_->xact_time_us, micros(now - xact_start_));
      in_xact_ = false;
    }
  }
  void received(std::uint64_t n) {
    if (c_ != nullptr) TrafficCounters::add(c_->bytes_received, n);
  }
  void sent(std::uint64_t n) {
    if (c_ != nullptr) TrafficCounters::add(c_->bytes_sent, n);
  }

 private:
  static std::uint64_t micros(Clock::duration d) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  }
  TrafficCounters* c_ = nullptr;
  Clock::time_point query_start_, xact_start_;
  bool in_xact_ = false;
};

}  // namespace pgmux::pooler
