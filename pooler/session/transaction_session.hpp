// The engine of one client's session, for every pool mode (see transaction_pooling.hpp). The
// client side reads the client, routes and leases (session/leasing.cpp) and writes to the
// server; the server side forwards the server's answers and hands the server back at a
// quiescent ReadyForQuery (session/transaction_end.cpp). Each side runs in plain completion
// handlers while its only waits are a socket's (session/quick_turn.cpp, server_pump.cpp) and
// hands over to its coroutine at the first other wait (the client loop in
// transaction_pooling.cpp, the server loop in server_loop.cpp), from the step it reached. Both
// sides run on the client's worker, so their shared state needs no locks; they wake each
// other through cancelled timers. What the bytes mean is decided without I/O by the
// inspectors (client_inspector.hpp, server_inspector.hpp) over the session's SessionProtocol;
// this class does the I/O. Private to the session/ files named here.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "lag_monitor/lsn.hpp"
#include "pooler/pool/pool.hpp"
#include "pooler/session/client_registry.hpp"
#include "pooler/session/replica_read_watch.hpp"
#include "pooler/session/server_inspector.hpp"
#include "pooler/session/session_protocol.hpp"
#include "pooler/session/transaction_pooling.hpp"
#include "pooler/session/turn_state.hpp"
#include "protocol/frame_scanner.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

class TransactionSession {
 public:
  explicit TransactionSession(TransactionSessionSetup s);

  ~TransactionSession() {
    if (live_) turn_states_.give(std::move(live_));
  }
  TransactionSession(const TransactionSession&) = delete;
  TransactionSession& operator=(const TransactionSession&) = delete;

  // One turn of the client loop: see serve_transaction_pooling().
  awaitable<ClientTurn> run(std::optional<boost::system::error_code> wake);
  // Its start without a coroutine: see take_quick_turn().
  QuickTurn turn_now(boost::system::error_code wake);

  SlabSet& slabs() { return s_.worker.slabs; }
  // Log context (built when a line is logged).
  [[nodiscard]] ClientLabel label() const { return ClientLabel{s_.info}; }

  friend bool idle_between_requests(const TransactionSession& session);
  friend IdleCarry take_idle_carry(TransactionSession& session);
  friend class ReplicaReadWatch;  // check_replica_read
  // The rest of what an idle session kept (the setup brought its settings and what the client
  // was told).
  void restore(IdleCarry carry);

 private:
  // --- client side ---
  // Answers, without a server, requests at the front of the client's buffer that need none:
  // Parse/Close of named statements up to a Sync (prepared on a server when first bound),
  // and DEALLOCATE of a protocol-level statement. Returns the bytes answered (0: none), their
  // answer in live_->out, to be written before the bytes are consumed.
  std::size_t answer_without_server();
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
  // ensure_server without a wait: an idle server of the primary's pool (no replicas to choose
  // among), already in step with the client's settings, taken and served at once. False, with
  // nothing changed, when anything needs a wait.
  bool lease_idle_now();
  // The same for a routed request (`route` from route_front()): an idle server of the pool
  // the route names, without the waits, bans and causal pauses of lease_for.
  struct FrontRoute;
  bool lease_routed_now(const FrontRoute& route);
  // An idle server of `pool` taken into lease_ when it is in step with the client's settings
  // (given back otherwise: false).
  bool take_idle_in_step(Pool& pool);
  // A server just leased: its login's last frame dropped, the client's statement limit set.
  void prepare_lease();
  // A leased server in step with the client: the cancel target, and the server side started.
  void serve_with_lease();
  // Leases from the pool `where` names; a replica that cannot be reached is banned and the
  // next candidate (or the primary) used, so the client sees no error for it.
  awaitable<ServerLease> lease_for(router::Decision where);
  // Fills `active` with each replica pool's servers in use and returns the primary's, when
  // balancing is least_connections (zeros otherwise).
  int count_active(std::span<int> active) const;
  // A read or write the primary serves: counted by its reason; refused (57P03) when no replica
  // could take a read that on_no_replica = "error" keeps off the primary.
  void count_primary_lease(router::Decision& where);
  awaitable<void> sync_settings();
  // Nothing to sync: the server has the client's settings and reports what the client was
  // told. Checked before sync_settings, so a lease that needs nothing costs no coroutine.
  bool settings_in_step() {
    return lease_->applied_settings() == state_.wanted && client_told_in_step();
  }
  bool client_told_in_step();
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
  // A replica lost before it answered the kept read: discards its lease.
  awaitable<void> drop_lost_replica();
  [[nodiscard]] lag::Lsn required_lsn();
  // Why no replica could take a read: banned, over its lag limits, or behind this client.
  [[nodiscard]] router::Reason why_no_replica() const;
  // After a transaction that wrote, on the primary: its WAL position (read-your-writes).
  awaitable<void> record_write_position();
  void write_position_lost(const std::exception& e);
  void build_segments(const char* base, std::size_t forwardable);
  // What build_segments() gathered, as a view: a composed write copies its buffer sequence,
  // and a copy of the vector would allocate once per request.
  [[nodiscard]] std::span<const asio::const_buffer> segments_view() const {
    return {live_->segments.data(), live_->segments.size()};
  }
  // What one scan of the client's bytes found: live_->segments then hold the bytes to send.
  struct ScannedRequest {
    std::size_t forwardable = 0;
    bool terminated = false;  // the client sent Terminate
    bool timed = false;       // a request now awaits its answer under query_timeout_ms
  };
  // Where the client loop goes after a step.
  enum class ClientStep : std::uint8_t {
    forward,    // the request is routed and its server held: scan and write it
    again,      // back to the top of the loop (more to send, a retry, an answered SET)
    read_more,  // nothing whole to send: read the client (or park)
    end,        // the client said Terminate, or the session is over
  };
  // The request at the front of the client's buffer: answered without a server, or routed,
  // leased for, scanned and written.
  awaitable<ClientStep> serve_request();
  // A routing session's part of it: waits for a server being handed back, routes the request
  // and leases from the pool it names.
  awaitable<ClientStep> route_request();
  // Scans the client's unread bytes with the client inspector and arms the 25006 retry.
  ScannedRequest scan_request(ByteBuffer& buf);
  // Writes the scanned request to the server at once; false when the rest, after `written`
  // bytes, needs async_write. A failed write ends the session (08006).
  bool write_request_now(std::size_t& written);
  // After the scanned bytes were written to the server.
  void sent_request(ByteBuffer& buf, const ScannedRequest& request);
  awaitable<void> cleanup_after_client();
  // A request turn_now() scanned but the server's socket did not take whole: run() writes the
  // rest first. True when the client said Terminate (the turn ends).
  struct UnsentRequest {
    ScannedRequest request;
    std::size_t written = 0;
  };
  awaitable<bool> write_unsent_request();
  // An answer turn_now() made without a server that the client's socket did not take whole:
  // run() writes the rest of live_->out first, then consumes the request's bytes.
  struct UnsentAnswer {
    std::size_t used = 0, written = 0;
  };
  std::optional<UnsentAnswer> unsent_answer_;
  awaitable<void> write_unsent_answer();
  // One step of turn_now()'s loop: nullopt to go on, or how the turn continues.
  std::optional<QuickTurn> quick_step();
  // Nothing whole to send: park the client again, or let run() read under a time limit.
  QuickTurn read_more_now();
  // --- a full pool's queue without a coroutine (queued_turn.cpp) ---
  // No idle server: queue in the pool when it is full (QuickTurn::queued), else run()'s.
  QuickTurn queue_for_server();
  // The queued waiter's timer ended (served, failed or timed out): on with the turn.
  void on_queue_end(const std::shared_ptr<void>& owner);
  // Takes the lease the queue gave and goes on as turn_now() does.
  QuickTurn serve_queued(ServerLease lease);
  std::shared_ptr<Pool::Waiter> queued_;
  std::optional<WaitingFor> queued_since_;  // SHOW CLIENTS: waiting
  // A lease the queue gave whose settings need a sync (a query): run()'s ensure_server does it.
  bool sync_pending_ = false;
  // --- server side (server_pump.cpp, server_loop.cpp) ---
  // What the server side must wait for before it can go on.
  enum class ServerStep : std::uint8_t {
    go_on,        // nothing: the next stage
    read,         // the server's next bytes
    wait_writer,  // another write to the client to end, before the forward
    write,        // the client socket to take the rest of a forward
    refuse,       // statement mode: pgmux's ROLLBACK of a transaction the client opened
    finish,       // a transaction boundary with pgmux's own reads due (finish_transaction)
    done,         // nothing: the server went back to its pool, the loop ends
    stop,         // nothing: a failure, or the client left; the loop ends
  };
  // Where the server side is in handling what its last scan found: kept between steps, so a
  // plain completion handler and the server_loop coroutine can take turns on one lease.
  enum class ServerStage : std::uint8_t {
    scan,            // what the server sent: scan it (when there is none, read)
    forward,         // what the scan allows goes to the client
    after_forward,   // drop pgmux's own answers, refuse a transaction (statement mode)
    verdict,         // a bad server stops; a boundary ends the transaction
    after_boundary,  // the server stayed: on with what it sent after the ReadyForQuery
    read,            // what is left is part of a frame: read the rest
  };
  // Starts the server side of a new lease: a completion handler on the server's bytes
  // while nothing needs a wait of more than the socket's (the common transaction costs no
  // coroutine); the server_loop coroutine for the rest.
  void start_server_side();
  // Waits for the server's next bytes: received into its buffer (plain), or readiness (TLS).
  void await_server_bytes(std::shared_ptr<void> owner);
  // `received`: the wait brought the bytes already; otherwise they are read now.
  void on_server_readable(const std::shared_ptr<void>& owner, boost::system::error_code ec,
                          bool received);
  void serve_server_readiness(const std::shared_ptr<void>& owner, boost::system::error_code ec,
                              bool received);
  // Runs the stages that need no waiting; returns what the server side must wait for next.
  ServerStep advance_server();
  ServerStep scan_server_bytes();
  ServerStep read_next();
  ServerStep forward_now();
  void forwarded();
  ServerStep after_forward();
  ServerStep verdict();
  // The end of the server side's work on this lease (when the loop stops, not when it hands
  // the server back).
  void server_side_ended();
  // `owner` keeps the client session alive while the loop runs; it starts by waiting for
  // `first`.
  awaitable<void> server_loop(std::shared_ptr<void> owner, ServerStep first);
  // A read of the server (ServerStep::read) came back with `ec` (a timed-out request already
  // cancelled): stop, or scan again.
  ServerStep after_server_read(boost::system::error_code ec);
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
  // A read sent to a replica that has not begun to answer (replica_read_timeout_ms): the
  // worker's ReplicaReadWatch calls check_replica_read when its time has come. A replica that
  // still answers its lag monitor is only slow (watched another period); one that does not
  // is given up on: the pending receive is cancelled, and abandon_replica_read then cancels
  // the read there (in the background), discards the connection and has the read re-run on
  // the primary (replica_retry.cpp).
  [[nodiscard]] bool watching_replica() const {
    return state_.retry_armed && state_.lease_target >= 0 && s_.replica_read_timeout.count() > 0;
  }
  void check_replica_read(std::chrono::steady_clock::time_point now);
  void abandon_replica_read();
  // A CancelRequest, in the background, for the request running on the held server, which is
  // about to be discarded mid-request (its client left, or its replica stopped answering).
  void cancel_abandoned_request();
  // How the server loop ends on a failure: the failure the client loop reports, and a ban of
  // a replica that failed.
  void server_out_of_step(std::string_view why);
  void server_lost(boost::system::error_code ec);
  // The client closed or reset its connection (a non-blocking peek at its socket): asked when
  // a wait for a server ends, so a request queued by a client that left never runs.
  [[nodiscard]] bool client_left() const;
  static constexpr const char* kClientLeft =
      "the client closed its connection while it waited for a server";
  // The server went away with nothing pending and no transaction open: the lease is
  // discarded on the spot and the client's next request leases another.
  void server_closed_quietly(boost::system::error_code ec);
  awaitable<void> cancel_timed_out_request();
  // The rest of a forward the client's socket did not take at once, bounded by
  // client_write_timeout_ms (then the client is closed: timed_out).
  awaitable<std::pair<boost::system::error_code, std::size_t>> write_forward(
      const std::vector<asio::const_buffer>& buffers);
  // Statement mode: rolls back the transaction the client opened and answers its request with
  // an error and ReadyForQuery Idle in place of the server's. False if the server failed.
  awaitable<bool> refuse_transaction();
  // Post-transaction work; returns true when the server was handed back.
  awaitable<bool> finish_transaction();
  // Whether finish_transaction has reads of its own to run on the server (below); when not,
  // settle_transaction alone ends the transaction, without a coroutine.
  [[nodiscard]] bool session_reads_due() const;
  // The end of every transaction: the session out of pgmux's own work, and the server handed
  // back unless the client keeps it (or lost it: true then too).
  bool settle_transaction();
  // The parts of it that run only now and then: the session settings after a SET or RESET,
  // the side-effect-free functions (once per database), whether a pin still holds.
  awaitable<void> read_back_settings();
  awaitable<void> load_function_catalog();
  awaitable<void> check_pin_released();
  void release_server();
  // --- shared ---
  [[nodiscard]] bool quiescent() const { return state_.quiescent(*live_); }
  // Shows in SHOW CLIENTS what the session does with its server now (one relaxed store, only
  // when it changed).
  void publish_phase() {
    if (s_.info == nullptr) return;
    const ServerPhase now = lease_ && live_ ? state_.phase(*live_, internal_) : ServerPhase::none;
    if (now != published_phase_) {
      published_phase_ = now;
      s_.info->server_phase.store(now, std::memory_order_relaxed);
    }
  }
  static awaitable<void> wait(Timer& gate) {
    gate.expires_at(Timer::time_point::max());
    co_await gate.async_wait(as_result);
  }
  awaitable<void> write_client(std::string_view bytes);
  [[noreturn]] void fail(std::string sqlstate, std::string message) {
    throw SessionError(std::move(sqlstate), message);
  }

  TransactionSessionSetup s_;
  ServerLease lease_;
  bool server_loop_running_ = false;  // the server side (handler or coroutine) is at work
  ServerStage server_stage_ = ServerStage::scan;
  protocol::ScanResult server_scan_{};               // the last scan of the server's bytes
  std::size_t forward_written_ = 0;                  // of the forward in progress
  std::optional<ServerInspector> server_inspector_;  // for the lease held
  pr::FrameScanner server_scanner_;
  bool internal_ = false;     // the server loop is running pgmux's own queries
  bool client_done_ = false;  // the client loop has ended
  ServerPhase published_phase_ = ServerPhase::none;
  pr::FrameScanner client_scanner_;
  using Edit = TurnState::Edit;
  // What the session needs while active, lent by the worker's pool (see turn_state.hpp).
  TurnStatePool& turn_states_;
  std::unique_ptr<TurnState> live_;
  bool parked_ = false;  // the client's turn ended: its session waits for the client's bytes
  // What turn_now() leaves to run(): a request's unsent rest, or the failure it ran into.
  std::optional<UnsentRequest> unsent_;
  std::exception_ptr carried_failure_;

  bool writing_client_ = false;
  bool rearm_read_ = false;  // the client read was cancelled to re-evaluate its time limit
  std::chrono::steady_clock::time_point request_started_;  // oldest unanswered request
  bool rearm_server_read_ = false;  // the server read was cancelled to apply query_timeout_ms
  ReplicaReadWatch::Entry replica_watch_{this};  // in the worker's watch while a read waits
  bool replica_unanswered_ = false;              // check_replica_read gave up on the replica

  // What the session knows of the client and of the held server (sans-I/O).
  SessionProtocol state_;
  // Read-your-writes: the WAL position this client's reads must see (its last write on the
  // primary, or what it set with pgmux.min_lsn); while a write's position is unknown, the
  // primary's first lag sample after this time (steady ns) stands in for it.
  lag::Lsn min_lsn_ = 0;
  std::int64_t write_position_unknown_since_ns_ = 0;
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

}  // namespace pgmux::pooler
