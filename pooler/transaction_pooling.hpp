// Transaction pooling for one client: a server connection is leased when the client sends a
// request and handed back at the first ReadyForQuery that leaves it quiescent (Idle, every
// Query/Sync answered, no open extended batch, no COPY), unless the client took session-only
// state. Session settings and named prepared statements follow the client from server to
// server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pooler/asio_util.hpp"
#include "pooler/cancel_registry.hpp"
#include "pooler/client_registry.hpp"
#include "pooler/config.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/session/reported_parameters.hpp"
#include "pooler/startup_params.hpp"
#include "router/policy.hpp"

namespace pgmux::pooler {

class Runtime;
class Pool;
class DatabaseRouting;
struct Worker;
struct Config;

struct TransactionSessionSetup {
  Runtime& rt;
  Worker& worker;
  const Config& config;
  FramedSocket& client;
  std::string label;
  std::shared_ptr<Pool> pool;
  CancelKey cancel_key;
  ParamList startup_settings;      // the client's own settings from its startup packet
  ReportedParameters told_client;  // the ParameterStatus values the client was given
  bool statement_mode = false;     // refuse multi-statement transactions (mode = "statement")
  // Read/write routing: one pool per replica (empty when read_write_split is off).
  std::shared_ptr<DatabaseRouting> routing;
  std::vector<std::shared_ptr<Pool>> replica_pools;
  router::RoutingRules rules;
  router::Balancing balancing = router::Balancing::round_robin;
  // Replica lag and read-your-writes ([routing] / [databases.X]).
  ReadYourWrites read_your_writes = ReadYourWrites::client;
  Millis causal_wait{0};
  bool on_no_replica_error = false;
  ClientInfo* info = nullptr;  // SHOW CLIENTS state of this client
};

// Serves the client until it leaves. Throws SessionError for what ends the session with an
// error (pool wait timeout, lost server, protocol violation); the caller reports it.
awaitable<void> serve_transaction_pooling(TransactionSessionSetup setup);

}  // namespace pgmux::pooler
