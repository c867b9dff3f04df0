// Session pooling for one client: the server is leased at the client's first request (a
// client that logs in and idles stays parked holding none), its startup settings applied,
// and kept until the client leaves; then it is reset and reused, or closed if in doubt.
#include <spdlog/spdlog.h>

#include "pooler/client_session.hpp"
#include "pooler/relay.hpp"
#include "pooler/runtime.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

awaitable<ClientTurn> ClientSession::serve_session_pooling(
    std::optional<boost::system::error_code> wake) {
  // The server is leased at the client's first message and kept until it leaves.
  ByteBuffer& buf = client_.buffer();
  if (wake) {
    if (*wake) co_return ClientTurn::done;
    auto [ec, n] = client_.read_ready();
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      co_return ClientTurn::wait_for_client;
    }
    if (ec) co_return ClientTurn::done;  // left without a request
  }
  if (buf.size() == 0) co_return ClientTurn::wait_for_client;
  static constexpr std::string_view kTerminate("X\0\0\0\4", 5);
  if (buf.unread() == kTerminate) co_return ClientTurn::done;
  if (info_->killed) throw SessionError("57P01", kAdminFarewell);  // before waiting for a server
  const auto start = std::move(session_start_);

  WaitingFor waiting(info_.get());
  ServerLease lease = co_await lease_server(*info_->pool);
  waiting.got_server();
  if (info_->killed) {
    lease.give_back();  // killed while it waited: nothing was sent on this server
    throw SessionError("57P01", kAdminFarewell);
  }
  rt_.cancels().set_target(cancel_key_.pid, lease->login().endpoint, lease->backend_pid(),
                           lease->backend_secret());
  spdlog::debug("{} got server {}", label(), lease->label());
  co_await apply_settings(lease, start->first, start->second);

  RelayState st;
  st.meter = TrafficMeter(&info_->pool->traffic(worker_.index));
  const RelayEnd end = co_await relay(client_, *lease, st);
  rt_.cancels().clear_target(cancel_key_.pid);
  co_await finish_session(lease, end, st);
  co_return ClientTurn::done;
}

awaitable<void> ClientSession::apply_settings(ServerLease& lease, const ParamList& settings,
                                              const ReportedParameters& announced) {
  const SetBatch batch = build_set_batch(settings, lease->parameters());
  if (!batch.error.empty()) throw SessionError("42602", batch.error);
  if (!batch.sql.empty()) {
    std::optional<ServerError> rejected;
    try {
      co_await lease->simple_query(batch.sql);
    } catch (const ServerError& e) {
      rejected = e;
    }
    if (rejected) {
      // The server rejected a startup setting, as PostgreSQL itself would at login. The
      // failed batch left the server idle, so it goes back after the usual reset.
      co_await lease->reset(config_->pool.server_reset_query);
      lease.give_back();
      throw SessionError(rejected->sqlstate(), rejected->what());
    }
  }
  // Where the server's view differs from what the client was told at login (a value the
  // server normalised, or a server that differs from the pool's first), tell the client now:
  // ParameterStatus may arrive at any time.
  std::string out;
  for (const auto& [name, value] : lease->parameters()) {
    const std::string* told = announced.find(name);
    if (told == nullptr || *told != value) {
      pr::append_parameter_status(out, name, value);
    }
  }
  if (!out.empty()) co_await client_.write(out);
}

awaitable<void> ClientSession::finish_session(ServerLease& lease, RelayEnd end, RelayState& st) {
  switch (end) {
    case RelayEnd::client_terminated:
    case RelayEnd::client_gone:
      if (!st.quiescent()) {
        spdlog::info("{} left with server {} busy: closing the server", label(), lease->label());
        lease.discard();
        co_return;
      }
      try {
        co_await with_timeout(lease->reset(config_->pool.server_reset_query),
                              Millis(config_->pool.server_connect_timeout_ms));
        lease.give_back();
      } catch (const std::exception& e) {
        spdlog::warn("{} reset failed ({}): closing the server", lease->label(), e.what());
        lease.discard();
      }
      co_return;
    case RelayEnd::client_violation:
      lease.discard();
      throw ProtocolError("invalid message frame from client");
    case RelayEnd::server_gone:
    case RelayEnd::server_violation:
      spdlog::warn("{} lost its server {}: {}", label(), lease->label(),
                   end == RelayEnd::server_gone ? "connection closed" : "invalid frame");
      lease.discard();
      throw SessionError("08006",
                         "server connection lost: the server closed the connection "
                         "unexpectedly or sent an invalid message");
  }
}

}  // namespace pgmux::pooler
