// One client connection from accept to close: startup negotiation, authentication, leasing a
// server, relaying, and handing the server back clean. The session is a heap object served in
// turns: a turn is a coroutine that runs while the client has something to do, and between
// turns the session is parked in one readiness wait on its socket, holding no coroutine frame
// and no buffer. Login is in client_login.cpp, session pooling in session_pooling.cpp, the
// rest in client_session.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pooler/asio_util.hpp"
#include "pooler/cancel_registry.hpp"
#include "pooler/config.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/relay.hpp"
#include "pooler/startup_params.hpp"
#include "pooler/transaction_pooling.hpp"
#include "protocol/frame.hpp"

namespace pgmux::pooler {

class Runtime;
class Pool;
class ServerLease;
struct Worker;
struct ClientInfo;
struct StartupSettings;
class ReportedParameters;

// Runs the session; never throws (failures are reported to the client and logged once).
awaitable<void> run_client_session(Runtime& runtime, Worker& worker, Socket socket);

// A failure the client is told about as an ErrorResponse with this SQLSTATE, then closed.
class SessionError : public std::runtime_error {
 public:
  SessionError(std::string sqlstate, const std::string& message)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  [[nodiscard]] const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(Runtime& rt, Worker& worker, Socket socket);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // One turn: the first (`wake` empty) logs in and starts serving; a later one follows a
  // parked wait on the socket that ended with `wake`. Never throws.
  awaitable<ClientTurn> turn(std::optional<boost::system::error_code> wake);
  Socket& socket() { return client_.socket(); }
  Worker& worker() { return worker_; }

 private:
  // Where a parked session goes on when its client speaks.
  enum class Phase : std::uint8_t { login, transaction_pooling, session_first_request };

  // --- login (client_login.cpp) ---
  awaitable<ClientTurn> login_and_serve();
  awaitable<bool> read_startup();
  awaitable<void> authenticate(const UserConfig& user);
  awaitable<void> authenticate_scram(const UserConfig& user);
  awaitable<void> authenticate_md5(const UserConfig& user);
  awaitable<protocol::Frame> read_password_message();
  [[noreturn]] void fail_auth() const;

  // --- serving (client_session.cpp) ---
  awaitable<ClientTurn> serve_database(const DatabaseConfig& db, const UserConfig& user);
  // Chooses the pool and registers the client for SHOW CLIENTS.
  void join_pool(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                 StartupSettings& wanted);
  // Sends what PostgreSQL sends after authentication: ParameterStatus, BackendKeyData,
  // ReadyForQuery. Returns what the client was told.
  awaitable<ReportedParameters> send_welcome(const ParamList& settings);
  void start_transaction_pooling(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                                 ParamList settings, ReportedParameters told);
  // --- session pooling (session_pooling.cpp) ---
  awaitable<ClientTurn> serve_session_pooling(std::optional<boost::system::error_code> wake);
  awaitable<void> finish_session(ServerLease& lease, RelayEnd end, RelayState& st);
  awaitable<ServerLease> lease_server(Pool& pool);
  awaitable<void> apply_settings(ServerLease& lease, const ParamList& settings,
                                 const ReportedParameters& announced);
  awaitable<void> send_error(std::string_view severity, std::string_view sqlstate,
                             std::string_view message);
  // Leaves everything the session joined (registry, pool, cancel key, client count) and
  // closes the socket; once.
  void close();

  Runtime& rt_;
  Worker& worker_;
  std::shared_ptr<const Config> config_;
  std::uint64_t id_;
  FramedSocket client_;
  std::string label_;  // log context: C-<id> user@database address:port
  // What only the login needs; dropped once the client is logged in to its database.
  struct LoginState {
    std::string peer;  // address:port
    std::string user, database;
    ParamList startup;  // the startup packet's parameters
  };
  std::unique_ptr<LoginState> login_;
  CancelKey cancel_key_{};
  Phase phase_ = Phase::login;
  bool admitted_ = false;  // counted against max_client_conn
  bool closed_ = false;
  std::shared_ptr<ClientInfo> info_;  // SHOW CLIENTS entry while logged in to a database
  std::shared_ptr<Pool> pool_;        // the pool the client joined (client count)
  TransactionSessionPtr transaction_;
  // Session pooling: what the client asked for at startup and was told, until its first
  // request takes a server.
  std::unique_ptr<std::pair<ParamList, ReportedParameters>> session_start_;
};

}  // namespace pgmux::pooler
