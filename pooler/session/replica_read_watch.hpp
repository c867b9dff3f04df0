// Reads sent to a replica that have not begun to answer, per worker (replica_read_timeout_ms).
// A session enters when it sends such a read, with the time it is to be looked at; the
// worker's watch loop (runtime.cpp) looks every kTick at the entries whose time has come and
// asks their sessions (TransactionSession::check_replica_read, replica_retry.cpp). An entry
// leaves when looked at (its session puts it back if the read still waits on a replica that
// is only slow) or when its session is destroyed, so a read answered in time costs a list
// insertion and nothing else: no timer per read, whose arming would cost a syscall.
#pragma once

#include <boost/intrusive/list.hpp>
#include <chrono>

namespace pgmux::pooler {

class TransactionSession;

class ReplicaReadWatch {
 public:
  using Clock = std::chrono::steady_clock;
  using Hook =
      boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
  struct Entry : Hook {
    explicit Entry(TransactionSession* s) : session(s) {}
    TransactionSession* session;
    Clock::time_point due;
  };
  // How often the due entries are looked at: a frozen replica's reads are given up on this
  // much after replica_read_timeout_ms at most.
  static constexpr std::chrono::milliseconds kTick{100};

  ReplicaReadWatch() = default;
  ReplicaReadWatch(const ReplicaReadWatch&) = delete;
  ReplicaReadWatch& operator=(const ReplicaReadWatch&) = delete;

  void watch(Entry& e, Clock::time_point due) {
    e.due = due;
    if (!e.is_linked()) entries_.push_back(e);
  }
  // Looks at the entries whose time has come (replica_retry.cpp).
  void tick(Clock::time_point now);
  [[nodiscard]] bool empty() const { return entries_.empty(); }

 private:
  using List = boost::intrusive::list<Entry, boost::intrusive::constant_time_size<false>>;
  List entries_;
};

}  // namespace pgmux::pooler
