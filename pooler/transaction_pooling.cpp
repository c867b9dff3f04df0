// Two coroutines per client while it holds a server: the client loop (reads the client,
// rewrites statement names, writes to the server; also leases servers) and the server loop
// (forwards the server's answers, drops the answers to pgmux's own inserted messages, and
// hands the server back at a quiescent ReadyForQuery). Both run on the client's worker, so
// their shared state needs no locks; they wake each other through cancelled timers. What the
// bytes mean is decided without I/O by the inspectors in session/ (client_inspector.hpp,
// server_inspector.hpp) over the session's SessionProtocol state; these loops do the I/O.
#include "pooler/transaction_pooling.hpp"

#include <algorithm>
#include <array>
#include <deque>

#include <spdlog/spdlog.h>
#include <boost/container/small_vector.hpp>

#include "lag_monitor/lsn.hpp"
#include "pooler/client_session.hpp"
#include "pooler/database_routing.hpp"
#include "pooler/pool.hpp"
#include "pooler/runtime.hpp"
#include "pooler/session/client_inspector.hpp"
#include "pooler/session/expectations.hpp"
#include "pooler/session/server_inspector.hpp"
#include "pooler/session/session_protocol.hpp"
#include "pooler/session/turn_state.hpp"
#include "pooler/statement_effects.hpp"
#include "protocol/frame_scanner.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

// Larger Queries sent to a replica are not kept for the 25006 retry.
constexpr std::size_t kMaxRetryQuery = 64 * 1024;

// Whether "deallocate" appears in `sql` in any case: a cheap test before lexing it.
bool mentions_deallocate(std::string_view sql) {
  static constexpr std::string_view kWord = "deallocate";
  for (std::size_t i = 0; i + kWord.size() <= sql.size(); ++i) {
    if ((sql[i] | 0x20) != 'd') continue;
    std::size_t k = 1;
    while (k < kWord.size() && (sql[i + k] | 0x20) == kWord[k]) ++k;
    if (k == kWord.size()) return true;
  }
  return false;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Counts of what still holds the client to a server after the client's transaction ends.
constexpr std::string_view kPinProbeQuery =
    "SELECT 'state', ((SELECT count(*) FROM pg_catalog.pg_listening_channels()) + "
    "(SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_catalog.pg_backend_pid()) + "
    "(SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable) + "
    "(SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql) + "
    "(SELECT count(*) FROM pg_catalog.pg_class "
    "WHERE relnamespace = pg_catalog.pg_my_temp_schema()))::text";

}  // namespace

class TransactionSession {
 public:
  explicit TransactionSession(TransactionSessionSetup s)
      : s_(std::move(s)),
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
      if (iequals(setting.first, "pgmux.target")) {
        apply_target(setting.second);
      } else if (iequals(setting.first, "pgmux.min_lsn")) {
        if (auto lsn = lag::parse_lsn(setting.second)) min_lsn_ = *lsn;
      } else {
        return false;
      }
      return true;
    });
    for (const auto& [name, value] : s_.startup_settings) state_.wanted[name] = value;
  }

  ~TransactionSession() {
    if (live_) turn_states_.give(std::move(live_));
  }
  TransactionSession(const TransactionSession&) = delete;
  TransactionSession& operator=(const TransactionSession&) = delete;

  // One turn of the client loop: see serve_transaction_pooling().
  awaitable<ClientTurn> run(std::optional<boost::system::error_code> wake);

  SlabSet& slabs() { return s_.worker.slabs; }
  // Log context (built when a line is logged).
  [[nodiscard]] ClientLabel label() const { return ClientLabel{s_.info}; }

  friend bool idle_between_requests(const TransactionSession& session);
  friend IdleCarry take_idle_carry(TransactionSession& session);
  // The rest of what an idle session kept (the setup brought its settings and what the client
  // was told).
  void restore(IdleCarry carry) {
    state_.statements = std::move(carry.statements);
    state_.wanted = std::move(carry.wanted);
    min_lsn_ = carry.min_lsn;
    session_target_ = carry.session_target;
  }

 private:
  // --- client side ---
  // Answers, without a server, requests at the front of the client's buffer that need none:
  // Parse/Close of named statements up to a Sync (prepared on a server when first bound),
  // and DEALLOCATE of a protocol-level statement. Returns the bytes consumed (0: none).
  awaitable<std::size_t> answer_without_server();
  // Whether a request starting with `tag` could be one of those (checked before starting the
  // coroutine: most requests are not).
  [[nodiscard]] bool may_answer_without_server(char tag) const {
    return tag == pr::fe::kParse || tag == pr::fe::kClose ||
           (tag == pr::fe::kQuery && state_.statements && state_.statements->size() > 0);
  }
  // The time limit on the client's next bytes: idle_transaction_timeout_ms while it idles
  // inside a transaction, client_idle_timeout_ms while it holds no server; 0 for none.
  struct ReadLimit {
    Millis limit{0};
    std::string_view sqlstate, what;
  };
  [[nodiscard]] ReadLimit client_read_limit() const;
  // Reads what the client sends next, bounded by client_read_limit().
  awaitable<std::pair<boost::system::error_code, std::size_t>> read_client();
  // Takes in what the parked client sent (the wait that ended its park reported `wake`).
  // False when the client is gone.
  bool take_wake(boost::system::error_code wake);
  awaitable<void> ensure_server(router::Decision where = {});
  // Leases from the pool `where` names; a replica that cannot be reached is banned and the
  // next candidate (or the primary) used, so the client sees no error for it.
  awaitable<ServerLease> lease_for(router::Decision where);
  awaitable<void> sync_settings();
  // ParameterStatus for what the server reports differently from what the client was told:
  // written now, or, `before_held_rfq`, appended to live_->out ahead of the held
  // ReadyForQuery.
  awaitable<void> tell_client_parameters(bool before_held_rfq);
  // A kept server whose session settings no longer match the client's (a RESET or DISCARD ALL
  // of a startup setting) gets them back, as PostgreSQL resets to the startup value.
  awaitable<void> restore_startup_settings();
  // --- routing ---
  struct FrontRoute {
    router::Decision decision;
    router::StatementKind kind = router::StatementKind::write;
    bool set_target = false;  // SET pgmux.*, answered by pgmux
    std::string setting_name, target_value;
  };
  // Routes the request at the front of the client's buffer; nullopt until its first frame is
  // whole.
  std::optional<FrontRoute> route_front();
  [[nodiscard]] bool routing() const { return !s_.replica_pools.empty(); }
  // The server stays with the client between transactions: session pooling, or a pin.
  [[nodiscard]] bool keeps_server() const {
    return s_.session_pooling || state_.pin != PinReason::none;
  }
  bool apply_target(std::string_view value);
  // The SQL text a Query, Parse or Bind (of a named statement) runs; nullopt for others.
  std::optional<std::string_view> request_sql(char tag, std::string_view body) const;
  awaitable<void> answer_set_target(const FrontRoute& r);
  awaitable<void> retry_on_primary();
  [[nodiscard]] lag::Lsn required_lsn() const;
  // Why no replica could take a read: banned, over its lag limits, or behind this client.
  [[nodiscard]] router::Reason why_no_replica() const;
  // After a transaction that wrote, on the primary: its WAL position (read-your-writes).
  awaitable<void> record_write_position();
  void build_segments(const char* base, std::size_t forwardable);
  awaitable<void> cleanup_after_client();
  // --- server side ---
  // `owner` keeps the client session alive while the loop runs.
  awaitable<void> server_loop(std::shared_ptr<void> owner);
  // Gives the active state back once the client is parked and nothing is in flight: no
  // server leased, no loop running, no retry waiting.
  void lend_back_if_idle() {
    if (parked_ && live_ && !lease_ && !server_loop_running_ && !internal_ &&
        !state_.retry_pending && !state_.retry_armed && !live_->server_failure && quiescent()) {
      turn_states_.give(std::move(live_));
    }
  }
  // Reads the server's next bytes; while a request is unanswered, at most until
  // query_timeout_ms after it was sent (then: timed_out).
  awaitable<std::pair<boost::system::error_code, std::size_t>> read_server();
  // Statement mode: rolls back the transaction the client opened and answers its request with
  // an error and ReadyForQuery Idle in place of the server's. False if the server failed.
  awaitable<bool> refuse_transaction();
  // Post-transaction work; returns true when the server was handed back.
  awaitable<bool> finish_transaction();
  void release_server();
  // --- shared ---
  [[nodiscard]] bool quiescent() const { return state_.quiescent(*live_); }
  static awaitable<void> wait(asio::steady_timer& gate) {
    gate.expires_at(asio::steady_timer::time_point::max());
    co_await gate.async_wait(as_result);
  }
  awaitable<void> write_client(std::string_view bytes);
  [[noreturn]] void fail(std::string sqlstate, std::string message) {
    throw SessionError(std::move(sqlstate), message);
  }

  TransactionSessionSetup s_;
  ServerLease lease_;
  bool server_loop_running_ = false;
  bool internal_ = false;     // the server loop is running pgmux's own queries
  bool client_done_ = false;  // the client loop has ended
  pr::FrameScanner client_scanner_;
  using Edit = TurnState::Edit;
  // What the session needs while active, lent by the worker's pool (see turn_state.hpp).
  TurnStatePool& turn_states_;
  std::unique_ptr<TurnState> live_;
  bool parked_ = false;  // the client's turn ended: its session waits for the client's bytes

  bool writing_client_ = false;
  bool rearm_read_ = false;  // the client read was cancelled to re-evaluate its time limit
  std::chrono::steady_clock::time_point request_started_;  // oldest unanswered request
  bool rearm_server_read_ = false;  // the server read was cancelled to apply query_timeout_ms

  // What the session knows of the client and of the held server (sans-I/O).
  SessionProtocol state_;
  // Read-your-writes: the WAL position this client's reads must see (its last write on the
  // primary, or what it set with pgmux.min_lsn).
  lag::Lsn min_lsn_ = 0;
  router::SessionTarget session_target_ = router::SessionTarget::automatic;
  std::shared_ptr<const router::FunctionCatalog> catalog_;
  std::uint64_t catalog_generation_ = 0;

  // Makes the client loop's pending read start again under the limit that applies now (the
  // client went idle in a transaction, or gave its server back).
  void rearm_client_read(bool limit_applies) {
    if (!limit_applies || client_done_) return;
    rearm_read_ = true;
    boost::system::error_code ignored;
    s_.client.socket().cancel(ignored);
  }
};

awaitable<void> TransactionSession::write_client(std::string_view bytes) {
  while (writing_client_) co_await wait(live_->server_gate);
  writing_client_ = true;
  auto [ec, n] = co_await asio::async_write(s_.client.stream(), asio::buffer(bytes), as_result);
  writing_client_ = false;
  live_->server_gate.cancel();
  if (ec) throw boost::system::system_error(ec);
}

awaitable<ClientTurn> TransactionSession::run(std::optional<boost::system::error_code> wake) {
  std::exception_ptr failure;
  parked_ = false;
  if (!live_) live_ = turn_states_.take(s_.worker.io.get_executor());
  try {
    ByteBuffer& buf = s_.client.buffer();
    for (bool here = !wake || take_wake(*wake); here;) {
      if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
      if (state_.retry_pending) {
        // The replica refused the last Query as a write: wait for it to be handed back (the
        // server loop does at the dropped ReadyForQuery), then run the Query on the primary.
        while (lease_ || internal_ || server_loop_running_) {
          if (live_->server_failure)
            fail(live_->server_failure->first, live_->server_failure->second);
          co_await wait(live_->client_gate);
        }
        co_await retry_on_primary();
        continue;
      }
      const bool mid_frame = client_scanner_.mid_frame();
      if (buf.size() > 0 && (mid_frame || buf.size() >= pr::kTaggedHeaderSize)) {
        if (!mid_frame && buf.unread()[0] == pr::fe::kTerminate && !lease_) break;
        if (!mid_frame && !lease_ && !server_loop_running_ && !internal_ && !s_.session_pooling &&
            may_answer_without_server(buf.unread()[0])) {
          if (const std::size_t used = co_await answer_without_server(); used > 0) {
            buf.consume(used);
            continue;
          }
        }
        if (!mid_frame && routing()) {
          if (lease_ && state_.lease_target >= 0 && !live_->expect.open_batch()) {
            // Another request while on a replica: one bound for the primary waits until the
            // replica is answered and handed back (it stays if a read-only transaction holds it).
            const auto r = route_front();
            if (!r) goto read_more;
            // A Query armed for the 25006 retry must be answered before anything follows it.
            if (r->decision.target == router::Target::primary || state_.retry_armed) {
              while (lease_ && (!quiescent() || internal_ || state_.boundary_pending)) {
                co_await wait(live_->client_gate);
              }
            }
            if (state_.retry_pending) continue;
          }
          // A server about to be handed back is waited for, so this request is routed afresh
          // (and after its write position was read).
          while (internal_ || state_.boundary_pending || (server_loop_running_ && !lease_)) {
            co_await wait(live_->client_gate);
          }
          if (!lease_) {
            const auto r = route_front();
            if (!r) goto read_more;
            if (r->set_target) {
              co_await answer_set_target(*r);
              continue;
            }
            state_.first_kind = r->kind;
            co_await ensure_server(r->decision);
          }
        }
        co_await ensure_server();
        live_->edits.clear();
        live_->scratch.clear();
        const bool was_answered = live_->expect.empty();
        ClientInspector inspector{state_, *live_, *lease_, label(), buf.unread().data()};
        const auto r = client_scanner_.scan(buf.unread(), inspector);
        const bool timed_request =
            was_answered && !live_->expect.empty() && s_.config.pool.query_timeout_ms > 0;
        if (timed_request) request_started_ = std::chrono::steady_clock::now();
        if (inspector.violation || r.error != pr::FrameError::none) {
          fail("08P01", "protocol violation: invalid message frame from client");
        }
        if (r.forwardable > 0) {
          build_segments(buf.unread().data(), r.forwardable);
          // Arm the 25006 safety net for one whole request sent to a replica (not inside a
          // transaction: a read-only one must see its error).
          const bool one_query = inspector.first_tag == pr::fe::kQuery && inspector.queries == 1 &&
                                 inspector.syncs == 0;
          const bool one_batch =
              (inspector.first_tag == pr::fe::kParse || inspector.first_tag == pr::fe::kBind) &&
              inspector.syncs == 1 && inspector.last_tag == pr::fe::kSync && inspector.queries == 0;
          state_.retry_armed = state_.lease_target >= 0 && was_answered &&
                               lease_->tx_status() == 'I' && (one_query || one_batch) &&
                               inspector.others == 0 && r.forwardable <= kMaxRetryQuery &&
                               !client_scanner_.mid_frame();
          if (state_.retry_armed) {
            live_->retry_query.assign(buf.unread().data(), r.forwardable);
            live_->held.clear();
          }
          state_.server_write_cut = true;
          auto [ec, n] =
              co_await asio::async_write(lease_->io().stream(), live_->segments, as_result);
          if (ec) {
            fail("08006", "server connection lost: the server closed the connection unexpectedly");
          }
          state_.server_write_cut = false;
          state_.meter.received(r.forwardable);
          buf.consume(r.forwardable);
          if (timed_request && server_loop_running_) {
            // The server loop's pending read started without a deadline: restart it.
            rearm_server_read_ = true;
            boost::system::error_code ignored;
            lease_->io().socket().cancel(ignored);
          }
        }
        if (inspector.terminated) break;
        if (r.forwardable > 0) continue;
      }
    read_more:
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

awaitable<std::size_t> TransactionSession::answer_without_server() {
  // A client that prepares a statement while holding no server (pgbench -M prepared does it
  // synchronously, blocking every other client of its thread) must not wait for a server just
  // for that: holding none, it cannot be in a transaction, so its statements go into its own
  // map and reach a server with their first Bind.
  const std::string_view unread = s_.client.buffer().unread();
  std::size_t pos = 0;
  live_->out.clear();
  struct Pending {
    bool parse;
    std::string_view name, body, query;
  };
  std::vector<Pending> steps;
  for (;;) {
    if (unread.size() - pos < pr::kTaggedHeaderSize) co_return 0;
    const char tag = unread[pos];
    const std::uint32_t length = pr::read_be32(unread.data() + pos + 1);
    if (length < 4 || length - 4 > 1024 * 1024) co_return 0;  // the normal path judges it
    if (unread.size() - pos - pr::kTaggedHeaderSize < length - 4) co_return 0;
    const std::string_view body = unread.substr(pos + pr::kTaggedHeaderSize, length - 4);
    const std::size_t next = pos + pr::kTaggedHeaderSize + (length - 4);
    if (tag == pr::fe::kParse) {
      auto p = pr::decode_parse(body);
      if (!p || p->name.empty()) co_return 0;
      steps.push_back({true, p->name, body, p->query});
    } else if (tag == pr::fe::kClose) {
      auto c = pr::decode_close(body);
      if (!c || c->kind != 'S' || c->name.empty()) co_return 0;
      steps.push_back({false, c->name, body, {}});
    } else if (tag == pr::fe::kSync && !steps.empty()) {
      for (const Pending& st : steps) {
        if (st.parse) {
          state_.client_statements().define(st.name, st.body, scan_statement_effects(st.query));
          state_.meter.client_parse();
          live_->out.append("1\0\0\0\4", 5);  // ParseComplete
        } else {
          state_.erase_statement(st.name);
          live_->out.append("3\0\0\0\4", 5);  // CloseComplete
        }
      }
      pr::append_ready_for_query(live_->out, 'I');
      co_await write_client(live_->out);
      co_return next;
    } else if (tag == pr::fe::kQuery && steps.empty()) {
      // Only DEALLOCATE of a statement the client has is answered here: most Queries are not
      // worth lexing twice (the inspector lexes each once).
      if (!state_.statements || state_.statements->size() == 0) co_return 0;
      auto sql = pr::decode_query(body);
      if (!sql || !mentions_deallocate(*sql)) co_return 0;
      const StatementEffects fx = scan_statement_effects(*sql);
      if (fx.deallocate_name.empty() || !state_.erase_statement(fx.deallocate_name)) co_return 0;
      pr::append_command_complete(live_->out, "DEALLOCATE");
      pr::append_ready_for_query(live_->out, 'I');
      co_await write_client(live_->out);
      co_return next;
    } else if (tag != pr::fe::kFlush) {
      co_return 0;
    }
    pos = next;
  }
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

awaitable<void> TransactionSession::ensure_server(router::Decision where) {
  // The server loop may be finishing a transaction with pgmux's own queries, or handing the
  // server back: wait for it to settle either way.
  while (internal_ || (server_loop_running_ && !lease_)) co_await wait(live_->client_gate);
  if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
  if (lease_) co_return;
  // A killed client's socket is shut for reading, but a request it sent just before may
  // still be read: it must not wait for a server (KILL db pauses the pool) or run.
  if (s_.info != nullptr && s_.info->killed) {
    fail("57P01", s_.info->farewell != nullptr ? s_.info->farewell : kAdminFarewell);
  }
  WaitingFor waiting(s_.info);
  if (!routing()) {
    // Without replicas the primary's pool serves: an idle connection is taken at once,
    // without the frames of a leasing coroutine.
    if (auto idle = s_.pool->try_acquire_idle(s_.worker.io, s_.worker.index)) {
      state_.lease_target = -1;
      lease_ = std::move(*idle);
    }
  }
  if (!lease_) lease_ = co_await lease_for(where);
  waiting.got_server();
  if (s_.info != nullptr && s_.info->killed) {
    // Killed while it waited: its request must not run. The server is untouched.
    lease_.give_back();
    fail("57P01", s_.info->farewell != nullptr ? s_.info->farewell : kAdminFarewell);
  }
  state_.requests_on_lease = 0;
  lease_->io().release_frame();  // a fresh connection still holds its login's ReadyForQuery
  lease_->statements().set_capacity(
      static_cast<std::size_t>(s_.config.pool.max_prepared_statements));
  co_await sync_settings();
  s_.rt.cancels().set_target(s_.cancel_key.pid, lease_->login().endpoint, lease_->backend_pid(),
                             lease_->backend_secret());
  spdlog::debug("{} got server {}", label(), lease_->label());
  live_->expect.clear();
  state_.in_copy = state_.server_write_cut = false;
  server_loop_running_ = true;
  asio::co_spawn(s_.worker.io, server_loop(s_.owner.lock()),
                 [](std::exception_ptr e) { Runtime::log_exception("server loop", e); });
}

awaitable<ServerLease> TransactionSession::lease_for(router::Decision where) {
  const Millis wait_limit(s_.config.pool.query_wait_timeout_ms);
  try {
    if (routing() && where.target == router::Target::replica) {
      boost::container::small_vector<int, 8> active(s_.replica_pools.size(), 0);
      int primary_active = 0;
      if (s_.balancing == router::Balancing::least_connections) {
        for (std::size_t i = 0; i < active.size(); ++i) {
          active[i] = s_.replica_pools[i]->active_count();
        }
        primary_active = s_.pool->active_count();
      }
      const lag::Lsn need = required_lsn();
      std::optional<std::chrono::steady_clock::time_point> causal_deadline;
      for (int attempt = 0; attempt <= s_.routing->replica_count();) {
        const std::optional<int> pick =
            s_.routing->pick(where.primary_may_serve, active, primary_active, need);
        if (!pick) {
          if (need > 0 && s_.causal_wait.count() > 0 && s_.routing->any_eligible()) {
            // Replicas are healthy but behind this client's writes: wait a little for one to
            // replay them, asking the monitor for fresh positions.
            const auto now = std::chrono::steady_clock::now();
            if (!causal_deadline) causal_deadline = now + s_.causal_wait;
            if (now < *causal_deadline) {
              s_.routing->kick();
              asio::steady_timer pause(s_.worker.io, Millis(2));
              co_await pause.async_wait(as_result);
              where.reason = router::Reason::causal_replica;
              continue;
            }
          }
          where.reason = why_no_replica();
          break;
        }
        if (*pick < 0) break;  // primary_reads = "always" chose the primary
        try {
          ServerLease lease = co_await s_.replica_pools[static_cast<std::size_t>(*pick)]->acquire(
              s_.worker.io, s_.worker.index, wait_limit);
          state_.lease_target = *pick;
          s_.routing->count(where.reason);
          s_.routing->count_read(*pick);
          co_return lease;
        } catch (const ServerError& e) {
          if (e.sqlstate() == "57P01") throw;  // KILL, not a replica failure
          // Nothing was sent yet: the client need not know.
          s_.routing->ban(*pick, e.what());
          ++attempt;
        }
      }
    }
    if (routing() && where.reason == router::Reason::no_replica) where.reason = why_no_replica();
    if (routing() && s_.on_no_replica_error &&
        s_.rules.primary_reads == router::PrimaryReads::never &&
        (where.reason == router::Reason::no_replica ||
         where.reason == router::Reason::replica_lagging)) {
      s_.routing->count(where.reason);
      fail("57P03", "no replica can serve this read (" +
                        std::string(router::to_string(where.reason)) +
                        ") and primary_reads = \"never\" with on_no_replica = \"error\"");
    }
    if (routing()) s_.routing->count(where.reason);
    state_.lease_target = -1;
    co_return co_await s_.pool->acquire(s_.worker.io, s_.worker.index, wait_limit);
  } catch (const PoolTimeout& e) {
    fail("53300", e.what());
  } catch (const ServerError& e) {
    fail(e.sqlstate(), e.what());
  }
}

std::optional<TransactionSession::FrontRoute> TransactionSession::route_front() {
  // Frames longer than this are routed without being read whole (to the primary).
  constexpr std::uint32_t kMaxRoutedBody = 1024 * 1024;
  const std::string_view unread = s_.client.buffer().unread();
  router::RequestFacts facts{
      .session_target = session_target_,
      .replica_eligible = s_.routing->any_eligible(),  // lag and bans; LSNs in lease_for
  };
  if (auto it = state_.wanted.find("default_transaction_read_only"); it != state_.wanted.end()) {
    facts.session_read_only = iequals(it->second, "on");
  }
  FrontRoute out;
  const char tag = unread[0];
  const std::uint32_t length = pr::read_be32(unread.data() + 1);
  if ((tag == pr::fe::kQuery || tag == pr::fe::kParse || tag == pr::fe::kBind) && length >= 4 &&
      length - 4 <= kMaxRoutedBody) {
    if (unread.size() - pr::kTaggedHeaderSize < length - 4) return std::nullopt;
    const std::optional<std::string_view> sql =
        request_sql(tag, unread.substr(pr::kTaggedHeaderSize, length - 4));
    if (sql) {
      if (catalog_generation_ != s_.routing->catalog_generation() || !catalog_) {
        catalog_generation_ = s_.routing->catalog_generation();
        catalog_ = s_.routing->catalog();
      }
      const router::Classification& c =
          s_.worker.classifications.get(*sql, *catalog_, catalog_generation_);
      facts.kind = c.kind;
      facts.hint = c.hint;
      out.kind = c.kind;
      if (c.kind == router::StatementKind::set_target && tag == pr::fe::kQuery) {
        out.set_target = true;
        out.setting_name = c.setting_name;
        out.target_value = c.target_value;
        return out;
      }
    }
  }
  out.decision = router::decide(s_.rules, facts);
  return out;
}

std::optional<std::string_view> TransactionSession::request_sql(char tag,
                                                                std::string_view body) const {
  if (tag == pr::fe::kQuery) {
    if (auto q = pr::decode_query(body)) return *q;
  } else if (tag == pr::fe::kParse) {
    if (auto p = pr::decode_parse(body)) return p->query;
  } else if (tag == pr::fe::kBind) {
    // A named statement keeps its class: its text is classified once, then cached.
    auto b = pr::decode_bind(body);
    if (!b || b->statement.empty()) return std::nullopt;
    if (const StatementDef* def = state_.find_statement(b->statement)) {
      if (auto p =
              pr::decode_parse(std::string_view(def->parse_frame).substr(pr::kTaggedHeaderSize))) {
        return p->query;
      }
    }
  }
  return std::nullopt;
}

bool TransactionSession::apply_target(std::string_view value) {
  if (iequals(value, "primary")) {
    session_target_ = router::SessionTarget::primary;
  } else if (iequals(value, "replica")) {
    session_target_ = router::SessionTarget::replica;
  } else if (iequals(value, "auto") || value.empty()) {
    session_target_ = router::SessionTarget::automatic;
  } else {
    return false;
  }
  return true;
}

awaitable<void> TransactionSession::answer_set_target(const FrontRoute& r) {
  ByteBuffer& buf = s_.client.buffer();
  const std::uint32_t length = pr::read_be32(buf.unread().data() + 1);
  buf.consume(1 + length);
  live_->out.clear();
  std::string problem, hint;
  const char* sqlstate = "22023";
  if (r.setting_name == "pgmux.target") {
    if (!apply_target(r.target_value)) hint = "Available values: primary, replica, auto.";
  } else if (r.setting_name == "pgmux.min_lsn") {
    // A position carried from elsewhere (another connection, another pgmux): reads wait for
    // it as for the client's own writes. RESET forgets it.
    if (r.target_value.empty()) {
      min_lsn_ = 0;
    } else if (auto lsn = lag::parse_lsn(r.target_value)) {
      min_lsn_ = std::max(min_lsn_, *lsn);
    } else {
      hint = "A WAL position as pg_current_wal_lsn() prints it, e.g. 0/16B3748.";
    }
  } else {
    sqlstate = "42704";
    problem = "unrecognized configuration parameter \"" + r.setting_name + "\"";
    hint = "pgmux understands pgmux.target and pgmux.min_lsn.";
  }
  if (problem.empty() && !hint.empty()) {
    problem = "invalid value for parameter \"" + r.setting_name + "\": \"" + r.target_value + "\"";
  }
  if (problem.empty()) {
    spdlog::debug("{} {} = {}", label(), r.setting_name, r.target_value);
    pr::append_command_complete(live_->out, r.target_value.empty() ? "RESET" : "SET");
  } else {
    pr::append_error(live_->out,
                     {.severity = "ERROR", .sqlstate = sqlstate, .message = problem, .hint = hint});
  }
  pr::append_ready_for_query(live_->out, 'I');
  co_await write_client(live_->out);
}

lag::Lsn TransactionSession::required_lsn() const {
  lag::Lsn need = min_lsn_;
  if (s_.read_your_writes == ReadYourWrites::user) {
    need = std::max(need, s_.routing->user_write(s_.pool->user()));
  }
  return need;
}

router::Reason TransactionSession::why_no_replica() const {
  if (s_.routing->any_eligible()) return router::Reason::causal_primary;
  if (s_.routing->monitored()) {
    for (int i = 0; i < s_.routing->replica_count(); ++i) {
      if (!s_.routing->lag()->replica(i).eligible.load()) return router::Reason::replica_lagging;
    }
  }
  return router::Reason::no_replica;
}

awaitable<void> TransactionSession::record_write_position() {
  // The insert position, not pg_current_wal_lsn() (the write position): with
  // synchronous_commit = off a commit returns before its WAL is written, and only the insert
  // position is surely past the commit record.
  const auto rows =
      co_await lease_->query_pairs("SELECT pg_catalog.pg_current_wal_insert_lsn()::text, ''");
  if (rows.empty()) co_return;
  const auto lsn = lag::parse_lsn(rows[0].first);
  if (!lsn) co_return;
  min_lsn_ = std::max(min_lsn_, *lsn);
  spdlog::debug("{} wrote up to {} on {}", label(), lag::format_lsn(*lsn), lease_->label());
  if (s_.read_your_writes == ReadYourWrites::user) {
    s_.routing->note_user_write(s_.pool->user(), *lsn);
  }
  pr::append_parameter_status(live_->out, "pgmux.last_write_lsn", lag::format_lsn(min_lsn_));
  s_.told_client.set("pgmux.last_write_lsn", lag::format_lsn(min_lsn_));
}

awaitable<void> TransactionSession::retry_on_primary() {
  state_.retry_pending = false;
  live_->held.clear();
  const std::string_view frame(live_->retry_query);
  const std::uint32_t length = pr::read_be32(frame.data() + 1);
  if (auto sql = request_sql(frame[0], frame.substr(pr::kTaggedHeaderSize, length - 4))) {
    s_.worker.classifications.mark_write(*sql);  // next time straight to the primary
  }
  spdlog::info("{} a replica refused a statement as a write (25006): running it on the primary",
               label());
  state_.first_kind = router::StatementKind::write;
  co_await ensure_server(
      {.target = router::Target::primary, .reason = router::Reason::retried_on_primary});
  live_->edits.clear();
  live_->scratch.clear();
  ClientInspector inspector{state_, *live_, *lease_, label(), live_->retry_query.data()};
  pr::FrameScanner scanner(s_.client.max_message_size());
  const auto r = scanner.scan(live_->retry_query, inspector);
  if (inspector.violation || r.forwardable != live_->retry_query.size()) {
    fail("08P01", "protocol violation: invalid message frame from client");
  }
  if (s_.config.pool.query_timeout_ms > 0) request_started_ = std::chrono::steady_clock::now();
  build_segments(live_->retry_query.data(), r.forwardable);
  state_.server_write_cut = true;
  auto [ec, n] = co_await asio::async_write(lease_->io().stream(), live_->segments, as_result);
  if (ec) fail("08006", "server connection lost: the server closed the connection unexpectedly");
  state_.server_write_cut = false;
}

awaitable<void> TransactionSession::sync_settings() {
  ParameterMap& applied = lease_->applied_settings();
  // Exact equality (names compared with case) is the common case and cheap; anything else
  // goes through the case-insensitive comparison.
  const std::string sql =
      applied == state_.wanted ? std::string() : build_settings_sync(state_.wanted, applied);
  if (!sql.empty()) {
    std::optional<ServerError> refused;
    try {
      co_await lease_->simple_query(sql);
    } catch (const ServerError& e) {
      refused = e;
    }
    lease_->io().release_frame();
    if (refused) {
      // The server refused a setting the client asked for (at startup, or one it had SET):
      // the session cannot continue as the client expects, as PostgreSQL would refuse the
      // login. The server itself is fine after a reset.
      co_await lease_->reset(s_.config.pool.server_reset_query);
      lease_->io().release_frame();
      lease_.give_back();
      fail(refused->sqlstate(), refused->what());
    }
    applied = state_.wanted;
  }
  co_await tell_client_parameters(false);
}

awaitable<void> TransactionSession::tell_client_parameters(bool before_held_rfq) {
  // Reported values that differ from what the client was told (ParameterStatus may arrive
  // at any time). The client was told its pool's welcome parameters plus its own
  // differences: when this server differs from the same welcome in exactly those, there is
  // nothing to tell.
  const auto& base = s_.told_client.base();
  if (base && lease_->parameters_differing_from(base) == s_.told_client.own()) co_return;
  if (!before_held_rfq) live_->out.clear();
  for (const auto& [name, value] : lease_->parameters()) {
    // The client sees one server: whether this one is a standby is pgmux's business.
    if (name == "in_hot_standby") continue;
    const std::string* told = s_.told_client.find(name);
    if (told == nullptr || *told != value) {
      pr::append_parameter_status(live_->out, name, value);
      s_.told_client.set(name, value);
    }
  }
  if (!before_held_rfq && !live_->out.empty()) co_await write_client(live_->out);
}

awaitable<void> TransactionSession::restore_startup_settings() {
  ParameterMap& applied = lease_->applied_settings();
  const std::string sql = build_settings_sync(state_.wanted, applied);
  if (sql.empty()) co_return;
  co_await lease_->simple_query(sql);  // a refusal fails the server: it accepted these before
  lease_->io().release_frame();
  applied = state_.wanted;
  // The RESET's ParameterStatus told the client the server's default; the startup value
  // follows it (before a held ReadyForQuery, if any).
  co_await tell_client_parameters(state_.rfq_held);
}

awaitable<void> TransactionSession::server_loop([[maybe_unused]] std::shared_ptr<void> owner) {
  // When the loop is done with the server and the client is parked, the active state goes
  // back (declared first: it runs after the locals below are gone).
  struct LendBack {
    TransactionSession& t;
    ~LendBack() { t.lend_back_if_idle(); }
  } lend_back{*this};
  ServerInspector inspector{state_, *live_, *lease_};
  pr::FrameScanner scanner(s_.client.max_message_size());
  ByteBuffer& buf = lease_->io().buffer();
  for (;;) {
    if (buf.size() > 0) {
      inspector.holding = state_.retry_armed;
      const auto r = scanner.scan(buf.unread(), inspector);
      if (inspector.ready_seen) {
        inspector.ready_seen = false;
        live_->client_gate.cancel();  // a wait of the client loop's may be over
      }
      if (r.forwardable > 0 && inspector.holding) {
        // An armed request's preamble: kept until its fate is known, dropped on a retry.
        if (!state_.retry_pending) live_->held.append(buf.unread().data(), r.forwardable);
        buf.consume(r.forwardable);
      } else if (r.forwardable > 0) {
        while (writing_client_) co_await wait(live_->server_gate);
        writing_client_ = true;
        // A released preamble goes out in the same write as what follows it.
        const std::array<asio::const_buffer, 2> out{
            asio::buffer(live_->held), asio::buffer(buf.unread().data(), r.forwardable)};
        auto [ec, n] = co_await asio::async_write(s_.client.stream(), out, as_result);
        writing_client_ = false;
        live_->server_gate.cancel();
        state_.meter.sent(live_->held.size() + r.forwardable);
        live_->held.clear();
        buf.consume(r.forwardable);
        if (ec) break;  // the client is gone; its loop will notice and clean up
      }
      if (state_.retry_pending) live_->held.clear();
      if (inspector.release_held) {
        inspector.release_held = false;
        continue;  // the releasing frame is scanned again and forwarded, after live_->held
      }
      if (inspector.drop > 0) {
        buf.consume(inspector.drop);
        inspector.drop = 0;
        if (inspector.refuse_transaction) {
          inspector.refuse_transaction = false;
          if (!co_await refuse_transaction()) break;
          if (quiescent() && lease_->tx_status() == 'I' && co_await finish_transaction()) {
            co_return;
          }
        }
        if (!inspector.boundary) continue;
      }
      if (inspector.bad || r.error != pr::FrameError::none) {
        spdlog::warn("{} server {} sent an unexpected or invalid message: {}", label(),
                     lease_->label(), inspector.why.empty() ? "bad frame" : inspector.why);
        live_->server_failure = {"08P01", "protocol violation: unexpected message from server"};
        if (state_.lease_target >= 0) s_.routing->ban(state_.lease_target, "protocol violation");
        break;
      }
      if (r.forwardable > 0 && quiescent() && lease_->tx_status() != 'I') {
        rearm_client_read(s_.config.pool.idle_transaction_timeout_ms > 0);
      }
      if (inspector.boundary) {
        inspector.boundary = false;
        if (!client_done_ && quiescent() && lease_->tx_status() == 'I') {
          if (co_await finish_transaction()) co_return;
        }
        if (state_.boundary_pending) {
          state_.boundary_pending = false;  // kept the server after all
          live_->client_gate.cancel();
        }
        if (buf.size() > 0) continue;
      }
    }
    if (client_done_) break;
    // Without a deadline the read is awaited directly: no wrapper frame per read.
    auto [ec, n] = s_.config.pool.query_timeout_ms > 0 && !live_->expect.empty()
                       ? co_await read_server()
                       : co_await lease_->io().read_some();
    if (ec == asio::error::timed_out) {
      spdlog::info("{} request on server {} exceeded query_timeout_ms ({} ms): cancelling", label(),
                   lease_->label(), s_.config.pool.query_timeout_ms);
      co_await s_.rt.forward_cancel(s_.cancel_key);
      live_->server_failure = {"57014", "canceling statement due to query_timeout_ms (" +
                                            std::to_string(s_.config.pool.query_timeout_ms) +
                                            " ms)"};
      break;
    }
    if (ec == asio::error::operation_aborted && (client_done_ || rearm_server_read_)) {
      rearm_server_read_ = false;
      continue;
    }
    if (ec) {
      spdlog::warn("{} lost its server {}: {}", label(), lease_->label(), ec.message());
      if (state_.lease_target >= 0)
        s_.routing->ban(state_.lease_target, "connection lost: " + ec.message());
      live_->server_failure = {"08006",
                               "server connection lost: the server closed the connection "
                               "unexpectedly"};
      break;
    }
  }
  // Failure or client gone: the client loop decides the server's fate.
  server_loop_running_ = false;
  if (live_->server_failure) {
    boost::system::error_code ignored;
    s_.client.socket().cancel(ignored);  // wake the client loop
  }
  live_->client_gate.cancel();
}

awaitable<std::pair<boost::system::error_code, std::size_t>> TransactionSession::read_server() {
  auto read = [this]() { return lease_->io().read_some(); };
  const Millis limit(s_.config.pool.query_timeout_ms);
  if (limit.count() <= 0 || live_->expect.empty()) co_return co_await read();
  const auto left = std::chrono::duration_cast<Millis>(request_started_ + limit -
                                                       std::chrono::steady_clock::now());
  try {
    co_return co_await with_timeout(read(), std::max(left, Millis(1)));
  } catch (const TimeoutError&) {
  }
  co_return std::pair{boost::system::error_code(asio::error::timed_out), std::size_t{0}};
}

awaitable<bool> TransactionSession::refuse_transaction() {
  internal_ = true;
  try {
    co_await lease_->simple_query("ROLLBACK");
    lease_->io().release_frame();
  } catch (const std::exception& e) {
    spdlog::warn("{} server {}: ROLLBACK failed ({})", label(), lease_->label(), e.what());
    live_->server_failure = {"08006", "pgmux could not roll back a refused transaction"};
  }
  internal_ = false;
  live_->client_gate.cancel();
  if (live_->server_failure) co_return false;
  live_->out.clear();
  pr::append_error(live_->out, {.severity = "ERROR",
                                .sqlstate = "0A000",
                                .message = "pgmux: transaction blocks are not allowed in statement "
                                           "pooling mode; the transaction was rolled back",
                                .hint = "use mode = \"transaction\" for this client"});
  pr::append_ready_for_query(live_->out, 'I');
  co_await write_client(live_->out);
  co_return true;
}

awaitable<bool> TransactionSession::finish_transaction() {
  internal_ = true;
  if (state_.rfq_held) live_->out.clear();  // collects what goes out before the held ReadyForQuery
  try {
    if (state_.settings_changed) {
      state_.settings_changed = false;
      const auto rows = co_await lease_->query_pairs(kSessionSettingsQuery);
      ParameterMap now;
      for (const auto& [name, value] : rows) now[name] = value;
      lease_->applied_settings() = now;
      // A setting the client gave at startup and then RESET returns to its startup value, as
      // it would on a server the client had logged in to with it.
      for (const auto& [name, value] : s_.startup_settings) now.try_emplace(name, value);
      state_.wanted = std::move(now);
      if (keeps_server()) co_await restore_startup_settings();
    }
    if (state_.rfq_held) co_await record_write_position();
    if (routing() && state_.lease_target < 0 && s_.routing->begin_catalog_load()) {
      // Once per database: which functions are free of side effects, so calls to them can
      // still go to a replica. Read on the primary, whose catalog is the authority.
      router::NameSet names;
      try {
        for (auto& [name, unused] :
             co_await lease_->query_pairs(router::kSideEffectFreeFunctionsQuery)) {
          names.insert(std::move(name));
        }
      } catch (...) {
        s_.routing->abandon_catalog_load();
        throw;
      }
      s_.routing->finish_catalog_load(std::move(names));
    }
    if (state_.pin != PinReason::none && state_.check_pin) {
      state_.check_pin = false;
      const auto rows = co_await lease_->query_pairs(kPinProbeQuery);
      if (!rows.empty() && rows[0].second == "0") {
        spdlog::info("{} unpinned from server {}: session state released", label(),
                     lease_->label());
        state_.pin = PinReason::none;
        if (s_.info != nullptr) s_.info->pinned.store("");
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("{} server {}: reading session state failed ({}): closing the server", label(),
                 lease_->label(), e.what());
    live_->server_failure = {"08006", "pgmux could not read the session state from its server"};
  }
  lease_->io().release_frame();
  if (state_.rfq_held) {
    // The write's ReadyForQuery, held back until its position was known (even if reading it
    // failed: the transaction did commit).
    state_.rfq_held = false;
    pr::append_ready_for_query(live_->out, 'I');
    try {
      co_await write_client(live_->out);
    } catch (const std::exception&) {
    }
  }
  internal_ = false;
  live_->client_gate.cancel();
  if (live_->server_failure) {
    boost::system::error_code ignored;
    s_.client.socket().cancel(ignored);
    server_loop_running_ = false;
    co_return true;  // the client loop discards the server
  }
  // Bytes the server sent after the ReadyForQuery (a late notice) belong to this client.
  if (keeps_server() || !quiescent() || lease_->tx_status() != 'I' ||
      lease_->io().buffer().size() > 0) {
    co_return false;
  }
  release_server();
  co_return true;
}

void TransactionSession::release_server() {
  spdlog::debug("{} released server {}", label(), lease_->label());
  if (s_.info != nullptr) s_.info->state.store(ClientState::idle);
  state_.boundary_pending = false;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  lease_.give_back();
  lease_ = ServerLease();
  server_loop_running_ = false;
  live_->client_gate.cancel();
  rearm_client_read(state_.retry_pending || s_.config.pool.client_idle_timeout_ms > 0);
}

awaitable<void> TransactionSession::cleanup_after_client() {
  client_done_ = true;
  if (server_loop_running_ && lease_) {
    boost::system::error_code ignored;
    lease_->io().socket().cancel(ignored);
    while (server_loop_running_) co_await wait(live_->client_gate);
  }
  if (!lease_) co_return;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  if (live_->server_failure || !quiescent()) {
    if (!live_->server_failure) {
      spdlog::info("{} left with server {} busy: closing the server", label(), lease_->label());
    }
    lease_.discard();
    co_return;
  }
  try {
    // A transaction left open is rolled back; session-only state (a session-pooled or pinned
    // client's) goes with a full reset.
    if (lease_->tx_status() != 'I') co_await lease_->simple_query("ROLLBACK");
    if (keeps_server()) co_await lease_->reset(s_.config.pool.server_reset_query);
    lease_->io().release_frame();
    if (lease_->tx_status() != 'I') throw ServerError("08P01", "server not idle after ROLLBACK");
    lease_.give_back();
  } catch (const std::exception& e) {
    spdlog::warn("{} cleanup of server {} failed ({}): closing it", label(), lease_->label(),
                 e.what());
    lease_.discard();
  }
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
