// Dormant clients: a client parked for longer than client_dormant_after_ms with nothing in
// flight gives up everything but its socket and the state it needs between transactions.
//
// A parked session (client_session.cpp) waits in an Asio reactor operation that owns it, and
// holds its transaction session (about 1 kB in all). Most of the clients of a large fleet are
// idle most of the time, so the worker's sweep puts those idle for a while to sleep: their
// socket leaves Asio's reactor for this worker's own epoll set (one-shot, readable or hung up),
// and the transaction session is replaced by its IdleCarry. The first byte (or a kill, which
// shuts the socket's receiving side) wakes the client: its socket goes back to Asio, its
// session is rebuilt, and it is parked as before. Clients that are active never pay for this:
// parking only links the session into a list; the sweep runs a few times a second.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

class ClientSession;
class SlabSet;

// The intrusive links of a parked or dormant session (it is in at most one of the lists).
struct ParkLink {
  ParkLink* prev = nullptr;
  ParkLink* next = nullptr;
  std::uint32_t stamp = 0;  // the sweep epoch when the session was parked
  bool dormant = false;
};

class DormantClients : public asio::execution_context::service {
 public:
  using key_type = DormantClients;
  static inline asio::execution_context::id id;

  explicit DormantClients(asio::execution_context& ctx);
  ~DormantClients() override;
  DormantClients(const DormantClients&) = delete;
  DormantClients& operator=(const DormantClients&) = delete;

  static DormantClients& of(asio::io_context& io) { return asio::use_service<DormantClients>(io); }
  // The worker's slabs, whose spare chunks the sweep gives back.
  void use_slabs(SlabSet& slabs) { slabs_ = &slabs; }

  // Only from the worker's thread. A session parked with `after_ms` > 0 is put to sleep once
  // it has been parked for at least that long.
  void parked(ClientSession& session, std::int64_t after_ms);
  void unparked(ClientSession& session);
  // The session gave up its socket `fd`: it is woken (ClientSession::wake_up) when the fd is
  // readable or hung up. False if the fd could not be watched (the session then closes).
  bool sleep(ClientSession& session, int fd);
  // A dormant session that is going away (shutdown) stops being watched.
  void forget(ClientSession& session, int fd);

  // From any thread (SHOW MEM, /metrics).
  [[nodiscard]] std::size_t dormant() const {
    return dormant_count_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t dozed() const { return dozed_total_.load(std::memory_order_relaxed); }

 private:
  struct List {
    ParkLink head;
    List() { head.prev = head.next = &head; }
    [[nodiscard]] bool empty() const { return head.next == &head; }
    void push_back(ParkLink& link);
    static void unlink(ParkLink& link);
  };
  void arm_sweep();
  void sweep();
  void watch();
  void wake_ready();
  void shutdown() override;

  List parked_, dormant_;
  std::uint32_t epoch_ = 2;  // stamps start below it; a session parked at epoch e sleeps at e + 2
  std::int64_t after_ms_ = 0;
  bool sweep_armed_ = false;
  bool watching_ = false;
  bool shut_ = false;
  int epoll_fd_ = -1;
  SlabSet* slabs_ = nullptr;
  Timer sweep_timer_;
  asio::posix::stream_descriptor ready_;  // readable when a dormant socket is
  std::atomic<std::size_t> dormant_count_{0};
  std::atomic<std::uint64_t> dozed_total_{0};
};

}  // namespace pgmux::pooler
