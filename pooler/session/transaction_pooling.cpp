// The session engine's client loop (see session/transaction_session.hpp): reads the client,
// answers what needs no server, has the request routed and a server leased, and writes the
// request, rewritten by the client inspector, to the server. Also the session's factories.
#include "pooler/session/transaction_pooling.hpp"

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"
#include "pooler/session/client_inspector.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/sql_chars.hpp"
#include "pooler/session/transaction_session.hpp"
#include "protocol/message_writer.hpp"
#include "router/database_routing.hpp"

namespace pgmux::pooler {

namespace {

// Larger Queries sent to a replica are not kept for the 25006 retry.
constexpr std::size_t kMaxRetryQuery = 64 * 1024;
constexpr const char* kServerLost =
    "server connection lost: the server closed the connection unexpectedly";

}  // namespace

void TransactionSession::restore(IdleCarry carry) {
  state_.statements = std::move(carry.statements);
  state_.wanted = std::move(carry.wanted);
  min_lsn_ = carry.min_lsn;
  session_target_ = carry.session_target;
}

TransactionSession::TransactionSession(TransactionSessionSetup s)
    : s_(std::move(s)),
      server_scanner_(s_.client.max_message_size()),
      client_scanner_(s_.client.max_message_size()),
      turn_states_(TurnStatePool::of(s_.worker.io.get_executor())) {
  state_.settings = {.session_pooling = s_.session_pooling,
                     .statement_mode = s_.statement_mode,
                     .refuse_session_state = s_.config.pool.pin_session_state == PinPolicy::error,
                     .records_write_positions =
                         !s_.replica_pools.empty() && s_.read_your_writes != ReadYourWrites::off};
  state_.info = s_.info;
  state_.told_client = &s_.told_client;
  state_.meter = TrafficMeter(&s_.pool->traffic(s_.worker.index));
  // pgmux.target is pgmux's own setting (options=-c pgmux.target=primary): never sent on.
  std::erase_if(s_.startup_settings, [this](const auto& setting) {
    if (sql_chars::folds_to(setting.first, "pgmux.target")) {
      apply_target(setting.second);
    } else if (sql_chars::folds_to(setting.first, "pgmux.min_lsn")) {
      if (auto lsn = lag::parse_lsn(setting.second)) min_lsn_ = *lsn;
    } else {
      return false;
    }
    return true;
  });
  for (const auto& [name, value] : s_.startup_settings) state_.wanted[name] = value;
}

awaitable<void> TransactionSession::write_client(std::string_view bytes) {
  while (writing_client_) co_await wait(live_->server_gate);
  writing_client_ = true;
  std::size_t written = 0;
  boost::system::error_code ec;
  if (!s_.client.stream().try_write_all(asio::buffer(bytes), written, ec)) {
    std::tie(ec, std::ignore) = co_await asio::async_write(
        s_.client.stream(), asio::buffer(bytes.substr(written)), as_result);
  }
  writing_client_ = false;
  live_->server_gate.cancel();
  if (ec) throw boost::system::system_error(ec);
}

awaitable<ClientTurn> TransactionSession::run(std::optional<boost::system::error_code> wake) {
  // What a quick turn (quick_turn.cpp) left: a failure to report, or a request to finish.
  std::exception_ptr failure = std::exchange(carried_failure_, nullptr);
  parked_ = false;
  if (!live_) live_ = turn_states_.take(s_.worker.io.get_executor());
  try {
    bool here = !failure && (!wake || take_wake(*wake));
    if (here && unsent_answer_) co_await write_unsent_answer();
    if (here && unsent_) here = !co_await write_unsent_request();
    while (here) {
      if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
      if (state_.retry_pending) {
        co_await retry_on_primary();
        continue;
      }
      const ByteBuffer& buf = s_.client.buffer();
      const ClientStep step =
          buf.size() > 0 && (client_scanner_.mid_frame() || buf.size() >= pr::kTaggedHeaderSize)
              ? co_await serve_request()
              : ClientStep::read_more;
      if (step == ClientStep::again) continue;
      if (step == ClientStep::end) break;
      if (client_read_limit().limit.count() <= 0) {
        // Nothing to do until the client speaks: end the turn, so a client waiting (idle, or
        // for its server's answer) holds no coroutine frame, and an idle one no active state.
        parked_ = true;
        lend_back_if_idle();
        co_return ClientTurn::wait_for_client;
      }
      auto [ec, n] = co_await read_client();
      if (ec == asio::error::operation_aborted && rearm_read_ && !live_->server_failure) {
        rearm_read_ = false;  // the server loop asks for the idle limit to be re-evaluated
        continue;
      }
      if (ec) break;  // the client left (or the server loop closed us after a failure)
    }
  } catch (...) {
    failure = std::current_exception();
  }
  co_await cleanup_after_client();
  if (failure) std::rethrow_exception(failure);
  if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
  co_return ClientTurn::done;
}

awaitable<TransactionSession::ClientStep> TransactionSession::serve_request() {
  ByteBuffer& buf = s_.client.buffer();
  const bool mid_frame = client_scanner_.mid_frame();
  if (!mid_frame && buf.unread()[0] == pr::fe::kTerminate && !lease_) co_return ClientStep::end;
  if (!mid_frame && !lease_ && !server_loop_running_ && !internal_ && !s_.session_pooling &&
      may_answer_without_server(buf.unread()[0])) {
    if (const std::size_t used = answer_without_server(); used > 0) {
      co_await write_client(live_->out);
      buf.consume(used);
      co_return ClientStep::again;
    }
  }
  if (!mid_frame && routing()) {
    if (const ClientStep routed = co_await route_request(); routed != ClientStep::forward) {
      co_return routed;
    }
  }
  // Holding a settled server, ensure_server would find nothing to do: skip its frame.
  if (!lease_ || internal_ || live_->server_failure || sync_pending_) co_await ensure_server();
  const ScannedRequest request = scan_request(buf);
  if (request.forwardable > 0) {
    if (std::size_t written = 0; !write_request_now(written)) {
      auto [ec, n] = co_await asio::async_write(lease_->io().stream(),
                                                buffers_after(segments_view(), written), as_result);
      if (ec) fail("08006", kServerLost);
    }
    sent_request(buf, request);
    publish_phase();
  }
  if (request.terminated) co_return ClientStep::end;
  co_return request.forwardable > 0 ? ClientStep::again : ClientStep::read_more;
}

awaitable<TransactionSession::ClientStep> TransactionSession::route_request() {
  if (lease_ && state_.lease_target >= 0 && !live_->expect.open_batch()) {
    // Another request while on a replica: one bound for the primary waits until the replica
    // is answered and handed back (it stays if a read-only transaction holds it).
    const auto r = route_front();
    if (!r) co_return ClientStep::read_more;
    // A Query armed for the 25006 retry must be answered before anything follows it.
    if (r->decision.target == router::Target::primary || state_.retry_armed) {
      while (lease_ && (!quiescent() || internal_ || state_.boundary_pending)) {
        co_await wait(live_->client_gate);
      }
    }
    if (state_.retry_pending) co_return ClientStep::again;
  }
  // A server about to be handed back is waited for, so this request is routed afresh (and
  // after its write position was read).
  while (internal_ || state_.boundary_pending || (server_loop_running_ && !lease_)) {
    co_await wait(live_->client_gate);
  }
  if (lease_) co_return ClientStep::forward;
  const auto r = route_front();
  if (!r) co_return ClientStep::read_more;
  if (r->set_target) {
    co_await answer_set_target(*r);
    co_return ClientStep::again;
  }
  state_.first_kind = r->kind;
  co_await ensure_server(r->decision);
  co_return ClientStep::forward;
}

TransactionSession::ScannedRequest TransactionSession::scan_request(ByteBuffer& buf) {
  live_->edits.clear();
  live_->scratch.clear();
  const bool was_answered = live_->expect.empty();
  ClientInspector inspector{state_, *live_, *lease_, label(), buf.unread().data()};
  const auto r = client_scanner_.scan(buf.unread(), inspector);
  const bool timed = was_answered && !live_->expect.empty() && s_.config.pool.query_timeout_ms > 0;
  if (timed) request_started_ = std::chrono::steady_clock::now();
  if (inspector.violation || r.error != pr::FrameError::none) {
    fail("08P01", "protocol violation: invalid message frame from client");
  }
  if (r.forwardable == 0) return {0, inspector.terminated, timed};
  build_segments(buf.unread().data(), r.forwardable);
  // Arm the 25006 safety net for one whole request sent to a replica (not inside a
  // transaction: a read-only one must see its error).
  const bool one_query =
      inspector.first_tag == pr::fe::kQuery && inspector.queries == 1 && inspector.syncs == 0;
  const bool one_batch =
      (inspector.first_tag == pr::fe::kParse || inspector.first_tag == pr::fe::kBind) &&
      inspector.syncs == 1 && inspector.last_tag == pr::fe::kSync && inspector.queries == 0;
  state_.retry_armed = state_.lease_target >= 0 && was_answered && lease_->tx_status() == 'I' &&
                       (one_query || one_batch) && inspector.others == 0 &&
                       r.forwardable <= kMaxRetryQuery && !client_scanner_.mid_frame();
  if (state_.retry_armed) {
    live_->retry_query.assign(buf.unread().data(), r.forwardable);
    live_->held.clear();
    if (s_.replica_read_timeout.count() > 0) {
      s_.worker.replica_reads.watch(replica_watch_,
                                    std::chrono::steady_clock::now() + s_.replica_read_timeout);
    }
  }
  return {r.forwardable, inspector.terminated, timed};
}

bool TransactionSession::write_request_now(std::size_t& written) {
  state_.server_write_cut = true;
  boost::system::error_code ec;
  const bool done = lease_->io().stream().try_write_all(segments_view(), written, ec);
  if (ec) fail("08006", kServerLost);
  return done;
}

void TransactionSession::sent_request(ByteBuffer& buf, const ScannedRequest& request) {
  state_.server_write_cut = false;
  state_.meter.received(request.forwardable);
  buf.consume(request.forwardable);
  if (request.timed && server_loop_running_) {
    // The server loop's pending read started without a deadline: restart it.
    rearm_server_read_ = true;
    boost::system::error_code ignored;
    lease_->io().socket().cancel(ignored);
  }
}

bool TransactionSession::take_wake(boost::system::error_code wake) {
  if (wake == asio::error::operation_aborted) {
    // Cancelled by the server loop (a failure to report, or a time limit to apply): the loop
    // looks at the session afresh.
    rearm_read_ = false;
    return true;
  }
  if (wake) return false;
  auto [ec, n] = s_.client.read_ready();
  return !ec || ec == asio::error::would_block || ec == asio::error::try_again;
}

TransactionSession::ReadLimit TransactionSession::client_read_limit() const {
  const auto& pool = s_.config.pool;
  if (lease_ && quiescent() && lease_->tx_status() != 'I' && state_.pin == PinReason::none) {
    return {Millis(pool.idle_transaction_timeout_ms), "25P03",
            "idle-in-transaction timeout: idle_transaction_timeout_ms"};
  }
  if (!lease_) {
    return {Millis(pool.client_idle_timeout_ms), "57P05",
            "client idle timeout: client_idle_timeout_ms"};
  }
  return {};
}

awaitable<std::pair<boost::system::error_code, std::size_t>> TransactionSession::read_client() {
  auto read = [this]() { return s_.client.read_some(); };
  const auto [limit, sqlstate, what] = client_read_limit();
  if (limit.count() <= 0) co_return co_await read();
  try {
    co_return co_await with_timeout(read(), limit);
  } catch (const TimeoutError&) {
  }
  spdlog::info("{} {} ({} ms) passed", label(), what, limit.count());
  fail(std::string(sqlstate), "terminating connection due to " + std::string(what) + " (" +
                                  std::to_string(limit.count()) + " ms)");
}

void TransactionSession::build_segments(const char* base, std::size_t forwardable) {
  live_->segments.clear();
  std::size_t at = 0;
  for (const Edit& e : live_->edits) {
    if (e.pos > at) live_->segments.emplace_back(base + at, e.pos - at);
    if (e.scratch_len > 0)
      live_->segments.emplace_back(live_->scratch.data() + e.scratch_at, e.scratch_len);
    at = e.pos + e.len;
  }
  if (forwardable > at) live_->segments.emplace_back(base + at, forwardable - at);
}

bool idle_between_requests(const TransactionSession& session) {
  const TransactionSession& t = session;
  // live_ is lent back only when nothing is in flight (see lend_back_if_idle()).
  return t.parked_ && !t.live_ && !t.lease_ && !t.server_loop_running_ && !t.internal_ &&
         !t.state_.retry_pending && !t.state_.retry_armed && !t.client_scanner_.mid_frame() &&
         !t.state_.settings_changed && !t.state_.check_pin && t.state_.pin == PinReason::none &&
         t.s_.client.buffer().size() == 0;
}

IdleCarry take_idle_carry(TransactionSession& session) {
  TransactionSession& t = session;
  return IdleCarry{.startup_settings = std::move(t.s_.startup_settings),
                   .told_client = std::move(t.s_.told_client),
                   .statements = std::move(t.state_.statements),
                   .wanted = std::move(t.state_.wanted),
                   .min_lsn = t.min_lsn_,
                   .session_target = t.session_target_};
}

TransactionSessionPtr make_transaction_session(TransactionSessionSetup setup, IdleCarry carry) {
  auto session = make_transaction_session(std::move(setup));
  session->restore(std::move(carry));
  return session;
}

void TransactionSessionDeleter::operator()(TransactionSession* session) const {
  SlabSet& slabs = session->slabs();
  session->~TransactionSession();
  slabs.deallocate(session, sizeof(TransactionSession));
}

std::size_t transaction_session_size() {
  return sizeof(TransactionSession);
}

TransactionSessionPtr make_transaction_session(TransactionSessionSetup setup) {
  // From the worker's slab: many sessions are dropped together when their clients go dormant,
  // and there their memory can go back to the kernel (net/slab.hpp).
  SlabSet& slabs = setup.worker.slabs;
  void* memory = slabs.allocate(sizeof(TransactionSession));
  try {
    return TransactionSessionPtr(new (memory) TransactionSession(std::move(setup)));
  } catch (...) {
    slabs.deallocate(memory, sizeof(TransactionSession));
    throw;
  }
}

// Not a coroutine itself: the turn's frame is run()'s, with no wrapper frame per request.
awaitable<ClientTurn> serve_transaction_pooling(TransactionSession& session,
                                                std::optional<boost::system::error_code> wake) {
  return session.run(wake);
}

}  // namespace pgmux::pooler
