// The session engine's routing and leasing (see transaction_session.hpp): where the request
// at the front of the client's buffer goes, the server leased for it (a replica that cannot
// be reached is banned and the next candidate used), pgmux's own SET pgmux.*, read-your-writes
// positions. The re-run of a request a replica refused or failed: replica_retry.cpp.
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/container/small_vector.hpp>
#include <cerrno>
#include <chrono>
#include <limits>

#include "pooler/runtime.hpp"
#include "pooler/session/client_inspector.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/sql_chars.hpp"
#include "pooler/session/transaction_session.hpp"
#include "protocol/message_writer.hpp"
#include "router/database_routing.hpp"

namespace pgmux::pooler {

awaitable<void> TransactionSession::ensure_server(router::Decision where) {
  // The server loop may be finishing a transaction with pgmux's own queries, or handing the
  // server back: wait for it to settle either way.
  while (internal_ || (server_loop_running_ && !lease_)) co_await wait(live_->client_gate);
  if (live_->server_failure) fail(live_->server_failure->first, live_->server_failure->second);
  if (std::exchange(sync_pending_, false)) {  // a lease from the queue (queued_turn.cpp)
    co_await sync_settings();
    serve_with_lease();
    co_return;
  }
  if (lease_ || lease_idle_now()) co_return;
  // A killed client's socket is shut for reading, but a request it sent just before may
  // still be read: it must not wait for a server (KILL db pauses the pool) or run.
  if (s_.info != nullptr && s_.info->killed) {
    fail("57P01", s_.info->farewell != nullptr ? s_.info->farewell : kAdminFarewell);
  }
  WaitingFor waiting(s_.info);
  lease_ = co_await lease_for(where);
  waiting.got_server();
  if (s_.info != nullptr && s_.info->killed) {
    // Killed while it waited: its request must not run. The server is untouched.
    lease_.give_back();
    fail("57P01", s_.info->farewell != nullptr ? s_.info->farewell : kAdminFarewell);
  }
  if (client_left()) {
    lease_.give_back();  // untouched: the request of a client that left must not run
    fail("08006", kClientLeft);
  }
  prepare_lease();
  if (!settings_in_step()) co_await sync_settings();
  serve_with_lease();
}

bool TransactionSession::client_left() const {
  // A waiting client's socket is not watched (a parked read would cost every client a
  // reactor operation), so it is looked at once, without blocking, when the wait ends. Only
  // after a wait long enough for a client to give up: PostgreSQL, too, runs a request whose
  // client closed just after sending it, and a look per short wait is a syscall per
  // transaction under a busy pool.
  constexpr std::int64_t kLongWaitUs = 100'000;
  if (s_.info != nullptr) {
    const std::int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count();
    if (now_us - s_.info->waiting_since_us.load(std::memory_order_relaxed) < kLongWaitUs) {
      return false;
    }
  }
  char byte = 0;
  const ssize_t n = ::recv(s_.client.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool TransactionSession::lease_idle_now() {
  if (lease_ || routing() || internal_ || server_loop_running_ || live_->server_failure ||
      (s_.info != nullptr && s_.info->killed)) {
    return false;
  }
  if (!take_idle_in_step(*s_.pool)) return false;
  state_.start_lease(-1);
  if (s_.info != nullptr) s_.info->mark_active();
  serve_with_lease();
  return true;
}

bool TransactionSession::take_idle_in_step(Pool& pool) {
  auto idle = pool.try_acquire_idle(s_.worker.io, s_.worker.index);
  if (!idle) return false;
  lease_ = std::move(*idle);
  prepare_lease();
  if (settings_in_step()) return true;
  // Its settings need a sync (a query): ensure_server leases again and waits for it.
  lease_.give_back();
  lease_ = ServerLease();
  return false;
}

bool TransactionSession::lease_routed_now(const FrontRoute& route) {
  const router::Decision& where = route.decision;
  // Reads the primary serves for want of a replica are counted (or refused) by lease_for.
  if (live_->server_failure || (s_.info != nullptr && s_.info->killed) ||
      where.reason == router::Reason::no_replica ||
      where.reason == router::Reason::replica_lagging) {
    return false;
  }
  int target = -1;
  Pool* pool = s_.pool.get();
  if (where.target == router::Target::replica) {
    boost::container::small_vector<int, 8> active(s_.replica_pools.size(), 0);
    const int primary_active = count_active(active);
    // A pick whose replica has no idle server moves the balancer on once more than lease_for
    // alone would: harmless to the spread.
    const std::optional<int> pick =
        s_.routing->pick(where.primary_may_serve, active, primary_active, required_lsn());
    if (!pick || *pick < 0) return false;  // no replica now (lease_for may wait for one)
    target = *pick;
    pool = s_.replica_pools[static_cast<std::size_t>(target)].get();
  }
  if (!take_idle_in_step(*pool)) return false;
  state_.first_kind = route.kind;
  state_.start_lease(target);
  s_.routing->count(where.reason);
  if (target >= 0) s_.routing->count_read(target);
  if (s_.info != nullptr) s_.info->mark_active();
  serve_with_lease();
  return true;
}

void TransactionSession::prepare_lease() {
  lease_->io().release_frame();  // a fresh connection still holds its login's ReadyForQuery
  lease_->statements().set_capacity(
      static_cast<std::size_t>(s_.config.pool.max_prepared_statements));
}

void TransactionSession::serve_with_lease() {
  s_.rt.cancels().set_target(s_.cancel_key.pid, lease_->login().endpoint, lease_->backend_pid(),
                             lease_->backend_secret());
  // Once per transaction: the labels are not even built unless debug lines are logged.
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("{} got server {}", label(), lease_->label());
  }
  live_->expect.clear();
  state_.in_copy = state_.server_write_cut = false;
  publish_phase();
  start_server_side();
}

int TransactionSession::count_active(std::span<int> active) const {
  if (s_.balancing != router::Balancing::least_connections) return 0;
  for (std::size_t i = 0; i < active.size(); ++i) active[i] = s_.replica_pools[i]->active_count();
  return s_.pool->active_count();
}

void TransactionSession::count_primary_lease(router::Decision& where) {
  if (where.reason == router::Reason::no_replica) where.reason = why_no_replica();
  s_.routing->count(where.reason);
  if (s_.on_no_replica_error && s_.rules.primary_reads == router::PrimaryReads::never &&
      (where.reason == router::Reason::no_replica ||
       where.reason == router::Reason::replica_lagging)) {
    fail("57P03", "no replica can serve this read (" +
                      std::string(router::to_string(where.reason)) +
                      ") and primary_reads = \"never\" with on_no_replica = \"error\"");
  }
}

awaitable<ServerLease> TransactionSession::lease_for(router::Decision where) {
  const Millis wait_limit(s_.config.pool.query_wait_timeout_ms);
  try {
    if (routing() && where.target == router::Target::replica) {
      // Servers in use per replica and on the primary, for least_connections.
      boost::container::small_vector<int, 8> active(s_.replica_pools.size(), 0);
      const int primary_active = count_active(active);
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
              Timer pause(s_.worker.io, Millis(2));
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
          state_.start_lease(*pick);
          s_.routing->count(where.reason);
          s_.routing->count_read(*pick);
          co_return lease;
        } catch (const ServerError& e) {
          // KILL (of this client or its database), not a replica failure. A replica's own
          // 57P01 (its postmaster died during the login) is one.
          const bool killed = (s_.info != nullptr && s_.info->killed) ||
                              std::string_view(e.what()) == kAdminFarewell;
          if (e.sqlstate() == "57P01" && killed) throw;
          // Nothing was sent yet: the client need not know. (A replica that stopped answering
          // is out already, and comes back with its next lag sample: no ban.)
          if (s_.routing->answering(*pick)) s_.routing->ban(*pick, e.what());
          ++attempt;
        }
      }
    }
    if (routing()) count_primary_lease(where);
    state_.start_lease(-1);
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
    facts.session_read_only = sql_chars::folds_to(it->second, "on");
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
  if (sql_chars::folds_to(value, "primary")) {
    session_target_ = router::SessionTarget::primary;
  } else if (sql_chars::folds_to(value, "replica")) {
    session_target_ = router::SessionTarget::replica;
  } else if (sql_chars::folds_to(value, "auto") || value.empty()) {
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

lag::Lsn TransactionSession::required_lsn() {
  if (write_position_unknown_since_ns_ != 0) {
    // A write whose position could not be read is behind any position the primary reported
    // after it (sampled_at is stored after the position it stamps).
    const lag::LagState& lag = *s_.routing->lag();
    if (lag.primary_sampled_at_ns.load() <= write_position_unknown_since_ns_) {
      return std::numeric_limits<lag::Lsn>::max();  // no replica is known to have it yet
    }
    const lag::Lsn after = lag.primary_lsn.load();
    min_lsn_ = std::max(min_lsn_, after);
    if (s_.read_your_writes == ReadYourWrites::user) {
      s_.routing->note_user_write(s_.pool->user(), after);
    }
    write_position_unknown_since_ns_ = 0;
  }
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
  publish_phase();  // wal_position
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

}  // namespace pgmux::pooler
