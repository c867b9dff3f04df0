// The pooling engine of one client, for every pool mode. Transaction pooling: a server
// connection is leased when the client sends a request and handed back at the first
// ReadyForQuery that leaves it quiescent (Idle, every Query/Sync answered, no open extended
// batch, no COPY), unless the client took session-only state. Session settings and named
// prepared statements follow the client from server to server. Session pooling is the same
// engine keeping its first server until the client leaves; statement pooling refuses
// transaction blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lag_monitor/lsn.hpp"
#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/pool/cancel_registry.hpp"
#include "pooler/session/client_registry.hpp"
#include "pooler/session/idle_carry.hpp"
#include "pooler/session/prepared_statements.hpp"
#include "pooler/session/reported_parameters.hpp"
#include "pooler/session/startup_params.hpp"
#include "router/policy.hpp"

namespace pgmux::router {
class DatabaseRouting;
}  // namespace pgmux::router

namespace pgmux::pooler {

class Runtime;
class Pool;
using router::DatabaseRouting;
struct Worker;
struct Config;

struct TransactionSessionSetup {
  Runtime& rt;
  Worker& worker;
  const Config& config;
  FramedSocket& client;
  // The client session that owns this one: the server loop holds it while it runs, so the
  // session outlives a loop still running when the client's turn ends.
  std::weak_ptr<void> owner;
  std::shared_ptr<Pool> pool;
  CancelKey cancel_key;
  ParamList startup_settings;      // the client's own settings from its startup packet
  ReportedParameters told_client;  // the ParameterStatus values the client was given
  bool statement_mode = false;     // refuse multi-statement transactions (mode = "statement")
  // Session pooling: the first request's server stays until the client leaves (no routing:
  // `pool` serves everything), with the same inspection as transaction pooling.
  bool session_pooling = false;
  // Read/write routing: one pool per replica (empty when read_write_split is off).
  std::shared_ptr<DatabaseRouting> routing;
  std::vector<std::shared_ptr<Pool>> replica_pools;
  router::RoutingRules rules;
  router::Balancing balancing = router::Balancing::round_robin;
  // Replica lag and read-your-writes ([routing] / [databases.X]).
  ReadYourWrites read_your_writes = ReadYourWrites::client;
  Millis causal_wait{0};
  Millis replica_read_timeout{0};  // replica_read_timeout_ms (0: never)
  bool on_no_replica_error = false;
  ClientInfo* info = nullptr;  // SHOW CLIENTS state of this client
};

// How a turn of a client's session ended.
enum class ClientTurn : std::uint8_t {
  // The client has nothing more to say for now: its session waits for the socket to become
  // readable holding no coroutine (the caller parks it), then takes another turn.
  wait_for_client,
  done,  // the session is over
};

class TransactionSession;
struct TransactionSessionDeleter {
  void operator()(TransactionSession* session) const;
};
using TransactionSessionPtr = std::unique_ptr<TransactionSession, TransactionSessionDeleter>;

TransactionSessionPtr make_transaction_session(TransactionSessionSetup setup);

// Whether the session is parked with nothing in flight (no server, no loop, no retry, no
// half-read frame), so that it can be replaced by its IdleCarry.
[[nodiscard]] bool idle_between_requests(const TransactionSession& session);
[[nodiscard]] IdleCarry take_idle_carry(TransactionSession& session);
// The session as it was when `carry` was taken; `setup` is built as for a new client.
TransactionSessionPtr make_transaction_session(TransactionSessionSetup setup, IdleCarry carry);
// sizeof(TransactionSession), for SHOW MEM.
std::size_t transaction_session_size();

// Serves the client until it has to wait for the client's next bytes (ClientTurn::
// wait_for_client) or leaves (ClientTurn::done). `wake` is the outcome of the parked wait that
// started this turn (nullopt for the first turn). Throws SessionError for what ends the
// session with an error (pool wait timeout, lost server, protocol violation); the caller
// reports it.
awaitable<ClientTurn> serve_transaction_pooling(TransactionSession& session,
                                                std::optional<boost::system::error_code> wake);

// The start of a turn taken without a coroutine, from the parked wait's own completion handler
// (session/quick_turn.cpp): the client's requests forwarded as long as they need no wait but
// the sockets' own, which for most transactions is all of them. `wait_for_client` when the
// client may be parked again at once; otherwise serve_transaction_pooling goes on with the
// wake-up it returns (the parked wait's outcome, nullopt when that was taken in already, or
// eof when the client has left).
struct QuickTurn {
  bool wait_for_client = false;
  bool queued = false;  // in a pool's queue: its waiter goes on (session/queued_turn.cpp)
  std::optional<boost::system::error_code> wake;
};
QuickTurn take_quick_turn(TransactionSession& session, boost::system::error_code wake);

}  // namespace pgmux::pooler
