// One client connection from accept to close: startup negotiation, authentication, leasing a
// server, relaying, and handing the server back clean. The session is a heap object served in
// turns: a turn is a coroutine that runs while the client has something to do, and between
// turns the session is parked in one readiness wait on its socket, holding no coroutine frame
// and no buffer. Both pooling modes run the same engine (transaction_pooling.hpp: session
// pooling is transaction pooling that keeps its server). Login is in client_login.cpp,
// parking and dormancy in client_parking.cpp, the rest in client_session.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/pool/cancel_registry.hpp"
#include "pooler/session/dormant_clients.hpp"
#include "pooler/session/startup_params.hpp"
#include "pooler/session/transaction_pooling.hpp"
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

class ClientSession : public std::enable_shared_from_this<ClientSession>, public ParkLink {
 public:
  ClientSession(Runtime& rt, Worker& worker, Socket socket);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // One turn: the first (`wake` empty) logs in and starts serving; a later one follows a
  // parked wait on the socket that ended with `wake`. Never throws.
  awaitable<ClientTurn> turn(std::optional<boost::system::error_code> wake);
  // The end of a session: a fatal error (`failure`, if any, else a kill's farewell) told to
  // the client, its remaining input drained, the socket closed. Never throws.
  awaitable<void> end_session(std::exception_ptr failure);
  // Waits for the client's next bytes holding nothing but the wait's handler, then runs the
  // next turn (and parks again unless the session ended).
  static void park(std::shared_ptr<ClientSession> session);
  // Goes on after a turn taken without a coroutine (session/quick_turn.cpp,
  // session/queued_turn.cpp): parks the client again, leaves it to the pool's queue, or runs
  // the rest of the turn as a coroutine.
  static void after_quick_turn(std::shared_ptr<ClientSession> session, QuickTurn quick);

  // Dormancy (session/dormant_clients.hpp), on the session's worker. doze() gives up the
  // socket's descriptor if the session is idle between requests (else -1), keeping itself
  // alive; wake_up() takes it back, rebuilds the session and parks it again; drop_dormant()
  // ends a dormant session (shutdown).
  int doze();
  void wake_up();
  void drop_dormant();
  // Shuts the receiving side (a kill): a parked or dormant session then wakes and ends.
  void shut_receive();
  // What a dormant client holds beyond this object (SHOW MEM).
  static std::size_t dormant_size() { return sizeof(Dormant); }

 private:
  // Where a parked session goes on when its client speaks.
  enum class Phase : std::uint8_t { login, serving };

  // --- login (client_login.cpp) ---
  awaitable<ClientTurn> login_and_serve();
  awaitable<bool> read_startup();
  // Client TLS: a peek at the first byte for PostgreSQL 17's direct TLS; the handshake (false
  // when it failed: the client is gone); client_tls_mode's demands once the user is known.
  awaitable<bool> starts_with_tls_hello();
  awaitable<bool> accept_tls();
  void check_client_tls();
  // A user not in the config, from auth_query (null: none); kept in looked_up_user_.
  awaitable<const UserConfig*> look_up_user();
  // [pgmux] hba_file's verdict for this client (throws 28000 on reject or no entry).
  AuthMethod access_method();
  awaitable<void> authenticate(const UserConfig& user, AuthMethod method);
  awaitable<void> authenticate_scram(const UserConfig& user);
  awaitable<void> authenticate_unknown_user();
  awaitable<protocol::ScramKey> run_scram(const protocol::ScramSecret& secret);
  awaitable<void> authenticate_md5(const UserConfig& user);
  awaitable<protocol::Frame> read_password_message();
  [[noreturn]] void fail_auth() const;
  // Log context: C-<id> user@database address:port (built when a line is logged: an idle
  // client keeps no copy).
  [[nodiscard]] std::string label() const;

  // --- serving (client_session.cpp) ---
  awaitable<ClientTurn> serve_database(const DatabaseConfig& db, const UserConfig& user);
  // Chooses the pool and registers the client for SHOW CLIENTS.
  void join_pool(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                 StartupSettings& wanted);
  // Sends what PostgreSQL sends after authentication: ParameterStatus, BackendKeyData,
  // ReadyForQuery. Returns what the client was told.
  awaitable<ReportedParameters> send_welcome(const ParamList& settings);
  // Builds the pooling engine for the client's mode; with `rest`, the session as a dormant
  // client left it.
  void start_pooling(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                     ParamList settings, ReportedParameters told, IdleCarry* rest = nullptr);
  awaitable<ServerLease> lease_server(Pool& pool);
  awaitable<void> send_error(std::string_view severity, std::string_view sqlstate,
                             std::string_view message);
  // After a fatal error: discards the client's input for a bounded time, so that the error
  // is read rather than lost to a reset.
  awaitable<void> drain_before_close();
  // Leaves everything the session joined (registry, pool, cancel key, client count); once.
  void leave();
  void end_login();
  // leave(), then closes the socket.
  void close();

  Runtime& rt_;
  Worker& worker_;
  std::shared_ptr<const Config> config_;
  std::uint64_t id_;
  FramedSocket client_;
  // What only the login needs; dropped once the client is logged in to its database.
  struct LoginState {
    std::string peer;  // address:port
    std::string user, database;
    ParamList startup;  // the startup packet's parameters
  };
  std::unique_ptr<LoginState> login_;
  CancelKey cancel_key_{};
  Phase phase_ = Phase::login;
  bool admitted_ = false;   // counted against max_client_conn
  bool logging_in_ = true;  // counted in the runtime's logins in flight (a drain waits)
  bool closed_ = false;
  std::shared_ptr<ClientInfo> info_;   // SHOW CLIENTS entry while logged in to a database
  TransactionSessionPtr transaction_;  // the pooling engine, once logged in
  // A user from auth_query: what user_ points to when it is not in *config_.
  std::shared_ptr<const UserConfig> looked_up_user_;
  // The database and user the client logged in to (in *config_).
  const DatabaseConfig* db_ = nullptr;
  const UserConfig* user_ = nullptr;
  // What a dormant session keeps: itself, its descriptor and its transaction session's carry.
  struct Dormant {
    std::shared_ptr<ClientSession> self;
    int fd = -1;
    std::optional<PackedIdleCarry> carry;
  };
  std::unique_ptr<Dormant> dormant_;
  std::uint16_t park_serial_ = 0;  // a parked wait from before the last doze is stale
  bool v6_ = false;                // the client's address family, to take the socket back
};

}  // namespace pgmux::pooler
