// The sans-I/O state of one client's session: what pgmux knows of the client's session (its
// named statements, its settings, whether it is pinned to its server) and of the conversation
// with the server it holds (COPY, the 25006 retry, a held ReadyForQuery, the hand-back). The
// inspectors (client_inspector.hpp, server_inspector.hpp) change it as bytes pass; the
// session's I/O loops (transaction_pooling.cpp) read it to decide when to lease, wait and
// release. No sockets here: the unit tests drive it with byte scripts.
#pragma once

#include <memory>
#include <string_view>

#include "pooler/pool/traffic_stats.hpp"
#include "pooler/session/client_registry.hpp"
#include "pooler/session/parameter_map.hpp"
#include "pooler/session/prepared_statements.hpp"
#include "pooler/session/reported_parameters.hpp"
#include "pooler/session/rewrite_state.hpp"
#include "pooler/session/statement_effects.hpp"
#include "router/classifier.hpp"

namespace pgmux::pooler {

// How the session's pool mode and policies shape the inspection.
struct ProtocolSettings {
  // Session pooling: the client keeps its first server, so statement names pass through and
  // only a reset of a setting needs reading back.
  bool session_pooling = false;
  bool statement_mode = false;  // refuse transaction blocks
  // pin_session_state = "error": refuse session-only state instead of pinning.
  bool refuse_session_state = false;
  // Read/write routing with read-your-writes: a write's WAL position is read at its end.
  bool records_write_positions = false;
};

struct SessionProtocol {
  ProtocolSettings settings;
  ClientInfo* info = nullptr;                 // SHOW CLIENTS entry (pinned), or null
  ReportedParameters* told_client = nullptr;  // the ParameterStatus values the client was told
  TrafficMeter meter;                         // SHOW STATS counters of the client's pool

  // --- the client's session ---
  // The client's named statements; created at its first Parse (most clients define none).
  std::unique_ptr<ClientStatements> statements;
  ParameterMap wanted;              // the client's session settings
  bool settings_changed = false;    // re-read the session settings after this transaction
  PinReason pin = PinReason::none;  // why the client keeps its server, if it must
  bool check_pin = false;           // the pinned state may have been released

  // --- the held server ---
  int lease_target = -1;  // -1: the lease is on the primary; else the replica index
  router::StatementKind first_kind = router::StatementKind::write;  // the lease's first request
  int requests_on_lease = 0;
  bool in_copy = false;           // the server is in COPY IN/BOTH
  bool server_write_cut = false;  // a write to the server is under way
  // The replica safety net: a request sent to a replica when nothing else was pending is kept
  // until the first frame of its answer with content. If that is ErrorResponse 25006
  // read_only_sql_transaction, or the replica shuts down or its connection is lost first, the
  // client never sees the answer and the request is re-run on the primary.
  bool retry_armed = false;    // the kept request awaits its first answer from the replica
  bool retry_pending = false;  // the replica refused it: re-run once the replica is back
  // The replica failed before answering (its connection lost, or 57P01-57P03): the request is
  // re-run on the primary and the broken server discarded instead of handed back.
  bool retry_lost = false;
  // The server sent an error nobody asked for between the client's transactions (a FATAL as
  // it shuts down or crashes): it is ending, and not the client's business.
  bool server_closing = false;
  // The primary refused a write with 25006 read_only_sql_transaction: it may have been
  // demoted (roles = "auto" then has the lag monitor look at once).
  bool primary_refused_write = false;
  bool rfq_held = false;          // a write's final ReadyForQuery awaits its WAL position
  bool boundary_pending = false;  // the server is about to be handed back

  // Nothing is owed by or to the server: every request answered, no batch open, no COPY.
  [[nodiscard]] bool quiescent(const RewriteState& live) const {
    return live.expect.empty() && !live.expect.open_batch() && !in_copy && !server_write_cut;
  }
  // This primary lease wrote and read-your-writes is on: read the WAL position at its end.
  [[nodiscard]] bool wants_write_position() const {
    using K = router::StatementKind;
    return settings.records_write_positions && lease_target < 0 &&
           (first_kind == K::write || first_kind == K::begin_read_write || requests_on_lease > 1);
  }
  // What SHOW CLIENTS shows of it (`own_queries`: pgmux runs its own queries on the server).
  [[nodiscard]] ServerPhase phase(const RewriteState& live, bool own_queries) const {
    if (retry_pending) return ServerPhase::retry_on_primary;
    if (rfq_held) return ServerPhase::wal_position;
    if (own_queries) return ServerPhase::own_queries;
    if (in_copy) return ServerPhase::copy;
    return quiescent(live) ? ServerPhase::held : ServerPhase::request;
  }
  // A new lease: its own counts.
  void start_lease(int target) {
    lease_target = target;
    requests_on_lease = 0;
  }

  ClientStatements& client_statements() {
    if (!statements) {
      statements = std::make_unique<ClientStatements>();
      if (info != nullptr)
        statements->publish_to(&info->prepared_statements, &info->prepared_bytes);
    }
    return *statements;
  }
  [[nodiscard]] const StatementDef* find_statement(std::string_view name) const {
    return statements ? statements->find(name) : nullptr;
  }
  bool erase_statement(std::string_view name) { return statements && statements->erase(name); }
};

}  // namespace pgmux::pooler
