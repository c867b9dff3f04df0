#include "pooler/session/dormant_clients.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>

#include "pooler/net/buffer_pool.hpp"
#include "pooler/net/slab.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/turn_state.hpp"

namespace pgmux::pooler {

namespace {

int open_epoll() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  return fd;
}

ClientSession& session_of(ParkLink& link) {
  return static_cast<ClientSession&>(link);
}

}  // namespace

void DormantClients::List::push_back(ParkLink& link) {
  link.prev = head.prev;
  link.next = &head;
  head.prev->next = &link;
  head.prev = &link;
}

void DormantClients::List::unlink(ParkLink& link) {
  link.prev->next = link.next;
  link.next->prev = link.prev;
  link.prev = link.next = nullptr;
}

DormantClients::DormantClients(asio::execution_context& ctx)
    : service(ctx),
      epoll_fd_(open_epoll()),
      sweep_timer_(static_cast<asio::io_context&>(ctx)),
      ready_(static_cast<asio::io_context&>(ctx), epoll_fd_) {}

DormantClients::~DormantClients() = default;  // ready_ closes the epoll set

void DormantClients::parked(ClientSession& session, std::int64_t after_ms) {
  if (after_ms <= 0 || shut_) return;
  ParkLink& link = session;
  link.stamp = epoch_;
  parked_.push_back(link);
  after_ms_ = after_ms;
  if (!sweep_armed_) arm_sweep();
}

void DormantClients::unparked(ClientSession& session) {
  ParkLink& link = session;
  if (link.prev == nullptr) return;
  if (link.dormant) {
    link.dormant = false;
    dormant_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  List::unlink(link);
}

void DormantClients::arm_sweep() {
  // Two sweeps apart: a session sleeps after between after_ms and 1.5 × after_ms of idleness.
  sweep_armed_ = true;
  sweep_timer_.expires_after(Millis(std::max<std::int64_t>(after_ms_ / 2, 10)));
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    sweep_armed_ = false;
    if (!ec && !shut_) sweep();
  });
}

void DormantClients::sweep() {
  ++epoch_;
  while (!parked_.empty()) {
    ParkLink& link = *parked_.head.next;
    if (link.stamp + 2 > epoch_) break;
    List::unlink(link);
    ClientSession& session = session_of(link);
    const int fd = session.doze();
    if (fd < 0) {  // busy after all (its server is still answering): look again later
      link.stamp = epoch_;
      parked_.push_back(link);
      continue;
    }
    if (!sleep(session, fd)) session.wake_up();
  }
  // The worker is quiet enough for its clients to sleep: free lists give back what the last
  // period did not use. Posted, so that the parked waits the dozes cancelled are freed first.
  auto& io = static_cast<asio::io_context&>(context());
  asio::post(io, [this, &io] {
    if (shut_) return;
    BufferPool::of(io.get_executor()).trim_unused();
    TurnStatePool::of(io.get_executor()).trim_unused();
    if (slabs_ != nullptr) slabs_->release_spares();
  });
  if (!parked_.empty()) arm_sweep();
}

bool DormantClients::sleep(ClientSession& session, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = static_cast<ParkLink*>(&session);
  // A socket that slept before is still in the set, disarmed (one-shot): re-arm it.
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 &&
      (errno != EEXIST || ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0)) {
    spdlog::warn("cannot watch a dormant client's socket: {}", std::strerror(errno));
    return false;
  }
  ParkLink& link = session;
  link.dormant = true;
  dormant_.push_back(link);
  dormant_count_.fetch_add(1, std::memory_order_relaxed);
  dozed_total_.fetch_add(1, std::memory_order_relaxed);
  watch();
  return true;
}

void DormantClients::forget(ClientSession& session, int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  unparked(session);
}

void DormantClients::watch() {
  if (watching_ || shut_ || dormant_.empty()) return;
  watching_ = true;
  ready_.async_wait(asio::posix::stream_descriptor::wait_read,
                    [this](boost::system::error_code ec) {
                      watching_ = false;
                      if (ec || shut_) return;
                      wake_ready();
                      watch();
                    });
}

void DormantClients::wake_ready() {
  std::array<epoll_event, 64> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      ParkLink& link = *static_cast<ParkLink*>(events[static_cast<std::size_t>(i)].data.ptr);
      unparked(session_of(link));
      session_of(link).wake_up();  // may end the session
    }
    if (n < static_cast<int>(events.size())) break;
  }
}

void DormantClients::shutdown() {
  shut_ = true;
  boost::system::error_code ignored;
  sweep_timer_.cancel();
  ready_.cancel(ignored);
  // Dormant sessions own themselves: end them here, while the worker's services still exist.
  // Parked ones are owned by their reactor operations, which the reactor destroys.
  while (!dormant_.empty()) {
    ParkLink& link = *dormant_.head.next;
    unparked(session_of(link));
    session_of(link).drop_dormant();
  }
}

}  // namespace pgmux::pooler
