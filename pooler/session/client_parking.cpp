// A client session between turns: parked in one socket wait, made dormant (its socket in the
// worker's own epoll set, its state packed) and woken again; and the kill that reaches a
// session in any of those states from another thread.
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"

namespace pgmux::pooler {

namespace {

// Where a parked client's next request lands (see park()); most requests are smaller.
struct Landing {
  static constexpr std::size_t kBytes = 256;
  SlabSet* slabs = nullptr;
  char* data = nullptr;

  Landing() = default;
  explicit Landing(SlabSet& set) : slabs(&set), data(static_cast<char*>(set.allocate(kBytes))) {}
  Landing(Landing&& other) noexcept
      : slabs(other.slabs), data(std::exchange(other.data, nullptr)) {}
  Landing& operator=(Landing&&) = delete;
  ~Landing() {
    if (data != nullptr) slabs->deallocate(data, kBytes);
  }
};

// The count a readiness wait's handler is called without.
constexpr std::size_t kNothingLanded = ~std::size_t{0};

}  // namespace

// Runs on the session's worker, where the session is still there while `alive` is set. Only
// the receiving side is shut: the session's read (or parked or dormant wait) ends as if the
// client had left, writes in flight complete, and a client between requests can still be
// told why.
void ClientInfo::kill(const char* why, bool only_if_idle) {
  if (worker == nullptr) return;
  asio::post(worker->io, [weak = weak_from_this(), why, only_if_idle] {
    auto info = weak.lock();
    if (!info || !info->alive || info->killed) return;
    const ClientState state = info->state.load();
    if (only_if_idle && state != ClientState::idle) return;
    info->killed = true;
    if (state != ClientState::active) info->farewell = why;
    info->session->shut_receive();
  });
}

// Waits for the client's next bytes holding nothing but this handler: no coroutine frame and
// no buffer, so an idle client costs its session object and one reactor operation (from the
// worker's slab: exactly its size, and apart from what stays when the client goes dormant). When
// the wait ends, the next turn runs; its completion handler holds the session meanwhile (a
// coroutine taking the shared_ptr by value would do, but GCC 12 mishandles such arguments).
// The session is also linked for dormancy; a wait that a doze cancelled (or that completed
// just before it) is stale and only lets go of the session.
//
// A serving session's wait receives the request itself, into a landing of a few hundred bytes
// from the slab that the handler owns: a readiness wait would cost Asio an epoll_ctl per wait,
// a receive into the session's buffer would make every parked client hold a block, and the
// receive is one that needs no syscall to start (net/drained_receive.hpp).
void ClientSession::park(std::shared_ptr<ClientSession> session) {
  ClientSession& parked = *session;
  parked.worker_.dormant.parked(parked, parked.config_->general.client_dormant_after_ms);
  const bool lands =
      parked.phase_ == Phase::serving && parked.transaction_ && !parked.client_.stream().is_tls();
  Landing landing = lands ? Landing(parked.worker_.slabs) : Landing();
  char* const area = landing.data;
  auto wake = [session = std::move(session), serial = parked.park_serial_,
               landing = std::move(landing)](boost::system::error_code ec,
                                             std::size_t landed = kNothingLanded) mutable {
    ClientSession& s = *session;
    // (A receive that completed is never stale: the reactor runs its handler as it receives,
    // or, for bytes there at park(), posts it ahead of any doze sweep, which takes only a
    // session parked for client_dormant_after_ms.)
    if (serial != s.park_serial_) return;
    s.worker_.dormant.unparked(s);
    if (landed != kNothingLanded && !ec) {
      s.client_.take_landed({landing.data, landed}, landed == Landing::kBytes);
    }
    if (s.phase_ != Phase::serving || !s.transaction_) {
      asio::co_spawn(s.worker_.io, s.turn(ec),
                     [session = std::move(session)](std::exception_ptr e, ClientTurn t) mutable {
                       if (e) Runtime::log_exception("client session", e);
                       if (!e && t == ClientTurn::wait_for_client) park(std::move(session));
                     });
      return;
    }
    // Serving: most turns need no wait but the sockets' and take no coroutine at all.
    after_quick_turn(std::move(session), take_quick_turn(*s.transaction_, ec));
  };
  if (parked.client_.stream().has_buffered_input()) {
    // TLS already holds the next bytes: the socket may never become readable for them.
    asio::post(parked.worker_.io, [w = std::move(wake)]() mutable { w({}); });
    return;
  }
  auto handler = asio::bind_allocator(SlabAllocator<void>(parked.worker_.slabs), std::move(wake));
  if (area != nullptr) {
    parked.client_.receive_drained(asio::buffer(area, Landing::kBytes), std::move(handler));
  } else {
    parked.client_.socket().async_wait(tcp::socket::wait_read, std::move(handler));
  }
}

void ClientSession::after_quick_turn(std::shared_ptr<ClientSession> session, QuickTurn quick) {
  ClientSession& s = *session;
  if (quick.queued) return;  // the pool's waiter holds the session until it is served
  if (quick.wait_for_client) {
    s.client_.release_buffer();  // a parked client holds no buffer
    park(std::move(session));
    return;
  }
  // The rest runs as the spawned coroutine itself (no turn() frame around it); only a
  // session that ends spawns end_session.
  auto next = [session = std::move(session)](std::exception_ptr e, ClientTurn t) mutable {
    ClientSession& s = *session;
    if (!e && t == ClientTurn::wait_for_client) {
      s.client_.release_buffer();  // a parked client holds no buffer
      park(std::move(session));
      return;
    }
    asio::co_spawn(s.worker_.io, s.end_session(e), [session](std::exception_ptr e2) {
      if (e2) Runtime::log_exception("client session", e2);
    });
  };
  asio::co_spawn(s.worker_.io, serve_transaction_pooling(*s.transaction_, quick.wake),
                 std::move(next));
}

int ClientSession::doze() {
  if (closed_ || !info_ || info_->killed || client_.buffer().size() > 0) return -1;
  if (client_.stream().is_tls()) return -1;  // its TLS session cannot be packed away
  if (phase_ != Phase::serving || !transaction_ || !idle_between_requests(*transaction_)) {
    return -1;
  }
  auto dormant = std::make_unique<Dormant>();
  dormant->self = shared_from_this();
  boost::system::error_code ec;
  dormant->fd = client_.socket().release(ec);  // the parked wait ends (stale, see park())
  if (ec) return -1;
  ++park_serial_;
  rt_.cancels().drop_target(cancel_key_.pid);
  if (transaction_) {
    dormant->carry = pack(take_idle_carry(*transaction_));
    transaction_.reset();
  }
  dormant_ = std::move(dormant);
  return dormant_->fd;
}

void ClientSession::wake_up() {
  const std::unique_ptr<Dormant> dormant = std::move(dormant_);  // may hold the last reference
  boost::system::error_code ec;
  client_.socket().assign(v6_ ? tcp::v6() : tcp::v4(), dormant->fd, ec);
  if (ec) {
    spdlog::warn("{} closing: cannot take its socket back after dormancy: {}", label(),
                 ec.message());
    ::close(dormant->fd);
    close();
    return;
  }
  if (dormant->carry) {
    try {
      IdleCarry carry = unpack(std::move(*dormant->carry));
      ParamList settings = std::move(carry.startup_settings);
      ReportedParameters told = std::move(carry.told_client);
      start_pooling(*db_, *user_, Config::mode_for(*db_, *user_), std::move(settings),
                    std::move(told), &carry);
    } catch (const std::exception& e) {
      spdlog::error("{} closing: cannot resume after dormancy: {}", label(), e.what());
      close();
      return;
    }
  }
  park(std::move(dormant->self));
}

void ClientSession::drop_dormant() {
  const std::unique_ptr<Dormant> dormant = std::move(dormant_);
  ::close(dormant->fd);
  // `dormant` holds the session: it ends when this returns.
}

void ClientSession::shut_receive() {
  if (dormant_) {
    ::shutdown(dormant_->fd, SHUT_RD);  // readable at once: the worker wakes the session
    return;
  }
  boost::system::error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_receive, ec);
}

}  // namespace pgmux::pooler
