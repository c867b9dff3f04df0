// The session engine at a transaction's end (see transaction_session.hpp): the work pgmux
// owes the session before the server goes back (settings read back after a SET or RESET,
// the write position for read-your-writes, the function catalog once per database, whether
// a pin still holds), and the hand-back itself.
#include <spdlog/spdlog.h>

#include <utility>

#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"
#include "protocol/message_writer.hpp"
#include "router/database_routing.hpp"

namespace pgmux::pooler {

namespace {

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

awaitable<void> TransactionSession::read_back_settings() {
  publish_phase();
  state_.settings_changed = false;
  const auto rows = co_await lease_->query_pairs(kSessionSettingsQuery);
  ParameterMap now;
  for (const auto& [name, value] : rows) now[name] = value;
  lease_->applied_settings() = now;
  // A setting the client gave at startup and then RESET returns to its startup value, as it
  // would on a server the client had logged in to with it.
  for (const auto& [name, value] : s_.startup_settings) now.try_emplace(name, value);
  state_.wanted = std::move(now);
  if (keeps_server()) co_await restore_startup_settings();
}

awaitable<void> TransactionSession::load_function_catalog() {
  publish_phase();
  // Once per database: which functions are free of side effects, so calls to them can still
  // go to a replica. Read on the primary, whose catalog is the authority.
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

awaitable<void> TransactionSession::check_pin_released() {
  publish_phase();
  state_.check_pin = false;
  const auto rows = co_await lease_->query_pairs(kPinProbeQuery);
  if (rows.empty() || rows[0].second != "0") co_return;
  spdlog::info("{} unpinned from server {}: session state released", label(), lease_->label());
  state_.pin = PinReason::none;
  if (s_.info != nullptr) s_.info->pinned.store("");
}

awaitable<bool> TransactionSession::finish_transaction() {
  internal_ = true;  // SHOW CLIENTS shows it only when pgmux's own work runs (below)
  if (state_.rfq_held) live_->out.clear();  // collects what goes out before the held ReadyForQuery
  try {
    if (state_.settings_changed) co_await read_back_settings();
    if (state_.rfq_held) {
      try {
        co_await record_write_position();
      } catch (const std::exception& e) {
        write_position_lost(e);
      }
    }
    // (After a lost write position the server is gone: nothing more is asked of it.)
    if (!state_.server_closing) {
      if (routing() && state_.lease_target < 0 && s_.routing->begin_catalog_load()) {
        co_await load_function_catalog();
      }
      if (state_.pin != PinReason::none && state_.check_pin) co_await check_pin_released();
    }
  } catch (const std::exception& e) {
    spdlog::warn("{} server {}: reading session state failed ({}): closing the server", label(),
                 lease_->label(), e.what());
    live_->server_failure = {"08006", "pgmux could not read the session state from its server"};
  }
  if (state_.rfq_held) {
    // The write's ReadyForQuery, held back until its position was known (even if reading it
    // failed: the transaction did commit).
    lease_->io().release_frame();
    state_.rfq_held = false;
    pr::append_ready_for_query(live_->out, 'I');
    try {
      co_await write_client(live_->out);
    } catch (const std::exception&) {
    }
  }
  co_return settle_transaction();
}

void TransactionSession::write_position_lost(const std::exception& e) {
  // The write committed and its answer is whole: the client goes on (a failure now would fail
  // its next statement, which never reached a server). Only the server is done for.
  spdlog::warn(
      "{} server {}: reading the write's WAL position failed ({}): the server is "
      "discarded, the client goes on; its reads wait for the primary's next lag sample",
      label(), lease_->label(), e.what());
  state_.server_closing = true;
  write_position_unknown_since_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                         .count();
}

bool TransactionSession::session_reads_due() const {
  return state_.settings_changed || state_.rfq_held ||
         (routing() && state_.lease_target < 0 && !s_.routing->catalog()->loaded()) ||
         (state_.pin != PinReason::none && state_.check_pin);
}

bool TransactionSession::settle_transaction() {
  lease_->io().release_frame();
  internal_ = false;
  publish_phase();
  live_->client_gate.cancel();
  if (live_->server_failure) {
    boost::system::error_code ignored;
    s_.client.socket().cancel(ignored);
    server_loop_running_ = false;
    return true;  // the client loop discards the server
  }
  // Bytes the server sent after the ReadyForQuery (a late notice) belong to this client.
  if (keeps_server() || !quiescent() || lease_->tx_status() != 'I' ||
      lease_->io().buffer().size() > 0) {
    return false;
  }
  lease_->io().release_buffer();  // an idle pooled server holds no receive buffer
  release_server();
  return true;
}

void TransactionSession::release_server() {
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("{} released server {}", label(), lease_->label());
  }
  if (s_.info != nullptr) s_.info->state.store(ClientState::idle);
  state_.boundary_pending = false;
  s_.rt.cancels().clear_target(s_.cancel_key.pid);
  // A server that sent an error nobody asked for is ending: it does not go back to the pool.
  if (std::exchange(state_.server_closing, false)) {
    lease_.discard();
  } else {
    lease_.give_back();
  }
  lease_ = ServerLease();
  publish_phase();
  server_loop_running_ = false;
  live_->client_gate.cancel();
  rearm_client_read(state_.retry_pending || s_.config.pool.client_idle_timeout_ms > 0);
}

}  // namespace pgmux::pooler
