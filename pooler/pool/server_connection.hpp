// One pgmux→PostgreSQL connection: login (SCRAM-SHA-256, md5 or cleartext, as the server asks),
// the parameters and cancel key the server reported, and simple-query helpers for setup and
// reset. Its relay traffic goes through ClientSession; this class owns only the connection.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "pooler/config/config.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/net/tcp_keepalive.hpp"
#include "pooler/pool/server_credentials.hpp"
#include "pooler/pool/server_registry.hpp"
#include "pooler/session/held_server.hpp"
#include "pooler/session/parameter_map.hpp"
#include "pooler/session/prepared_statements.hpp"

namespace pgmux::pooler {

// An ErrorResponse (or a local failure described like one) met while talking to a server.
class ServerError : public std::runtime_error {
 public:
  ServerError(std::string sqlstate, std::string message)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  [[nodiscard]] const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// Throws the ServerError an ErrorResponse body describes.
[[noreturn]] void throw_server_error(std::string_view body);

struct ServerLogin {
  Endpoint endpoint;
  std::string database;  // pgmux's name for the database (dbname is the server's)
  std::string dbname;
  std::string user;
  std::shared_ptr<ServerCredentials> credentials;  // shared by the user's pools
  ServerAuthSettings auth;
  std::size_t max_message_size = 0;
  ServerRegistry* registry = nullptr;  // SHOW SERVERS; the connection registers itself
  TlsMode tls_mode = TlsMode::disable;
  std::shared_ptr<const TlsContext> tls;  // set unless tls_mode is disable
  TcpKeepalive keepalive;                 // with the server's user timeout
};

// Asks the server for TLS as `mode` says: an SSLRequest, then the handshake if the server
// answers 'S'. Leaves the stream plain when the mode allows it (disable and allow do not ask;
// prefer accepts a server without TLS). Throws ServerError (08001) when TLS is required and
// unavailable or the handshake (certificate, host name) fails.
awaitable<void> negotiate_server_tls(Stream& stream, TlsMode mode, const TlsContext* ctx,
                                     const Endpoint& endpoint);

class ServerConnection final : public HeldServer {
 public:
  using Clock = std::chrono::steady_clock;
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  ServerConnection(Socket socket, ServerLogin login, std::uint64_t id);

  // Connects and logs in; throws ServerError (with the server's SQLSTATE when it sent one).
  static awaitable<std::unique_ptr<ServerConnection>> open(ServerLogin login, std::uint64_t id);

  // Sends one simple Query and reads up to ReadyForQuery, tracking ParameterStatus. Throws
  // ServerError on an ErrorResponse (after consuming up to ReadyForQuery).
  awaitable<void> simple_query(std::string_view sql);
  // Like simple_query, returning the first two columns of every row (NULL as "").
  awaitable<std::vector<std::pair<std::string, std::string>>> query_pairs(std::string_view sql);
  // Leaves the server Idle with default session state: ROLLBACK if in a transaction, then the
  // reset query. Throws on any surprise; the caller then discards the connection.
  awaitable<void> reset(std::string_view reset_query);

  void record_parameter(std::string_view name, std::string_view value) override;
  // Moves the socket onto another worker's io_context (only while idle: no pending I/O).
  void rebind(asio::io_context& io);
  // Sends Terminate (best effort, non-blocking) and closes.
  void close();
  // While idle in the pool a receive stays queued on a plain socket, so the reactor notices a
  // server that closes or speaks (a restart, pg_terminate_backend, idle_session_timeout)
  // without a syscall per reuse. (Over TLS a record cannot be received that way.)
  void watch_while_idle();
  // An idle connection has nothing to say: true if the server closed it or sent something
  // (PostgreSQL's FATAL on shutdown or termination) while it sat in the pool, so a dead
  // connection is replaced before a client's request is sent. Ends the idle watch, which
  // answers; unwatched, one non-blocking peek does unless `peek` is false.
  [[nodiscard]] bool spoke_while_idle(bool peek = true);

  FramedSocket& io() { return io_; }
  [[nodiscard]] const ParameterMap& parameters() const { return params_; }
  // The reported parameters whose values differ from `base` (a pool's welcome parameters) or
  // that `base` lacks, in_hot_standby left out. Kept until a parameter changes or another
  // base is asked for, so a session compares its few own values, not every parameter, at
  // each lease.
  const ParameterMap& parameters_differing_from(const std::shared_ptr<const ParameterMap>& base);
  // Transaction pooling: the session settings pgmux has set here (name → value) and the
  // statements it has prepared here. A reset (DISCARD ALL) empties both.
  ParameterMap& applied_settings() { return applied_settings_; }
  ServerStatements& statements() override { return statements_; }
  [[nodiscard]] const ServerStatements& statements() const { return statements_; }
  [[nodiscard]] std::int32_t backend_pid() const { return backend_pid_; }
  [[nodiscard]] std::int32_t backend_secret() const { return backend_secret_; }
  [[nodiscard]] const ServerLogin& login() const { return login_; }
  // TLS version and cipher (static strings), nulls for plain text; fixed after connecting.
  [[nodiscard]] std::pair<const char*, const char*> tls_names() const { return tls_names_; }
  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const std::string& label() const override { return label_; }
  [[nodiscard]] Clock::time_point created_at() const { return created_at_; }
  [[nodiscard]] std::chrono::system_clock::time_point connected_at() const { return connected_at_; }
  [[nodiscard]] Clock::time_point last_used() const { return last_used_; }
  void touch() { last_used_ = Clock::now(); }
  // When the pool closes this connection instead of reusing it (server_lifetime_ms).
  [[nodiscard]] Clock::time_point retire_at() const { return retire_at_; }
  void set_retire_at(Clock::time_point t) { retire_at_ = t; }
  // Transaction status from the last ReadyForQuery: 'I', 'T' or 'E'.
  [[nodiscard]] char tx_status() const override { return tx_status_; }
  void set_tx_status(char s) override { tx_status_ = s; }
  // Index of the worker whose io_context the socket is registered with.
  [[nodiscard]] int bound_worker() const { return bound_worker_; }
  void set_bound_worker(int w) { bound_worker_ = w; }
  // RECONNECT/KILL: the connection is closed instead of going back to the pool. Set from the
  // admin console's thread through the registry, read by the owning worker.
  void mark_close_needed() { close_needed_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool close_needed() const { return close_needed_.load(std::memory_order_relaxed); }

 private:
  static awaitable<std::unique_ptr<ServerConnection>> connect_once(const ServerLogin& login,
                                                                   TlsMode tls_mode,
                                                                   std::uint64_t id);
  // server_auth.cpp
  awaitable<void> authenticate();
  void answer_cleartext();
  void answer_md5(std::string_view data);
  awaitable<void> answer_sasl(std::string_view mechanisms);
  awaitable<void> read_until_ready();

  FramedSocket io_;
  ServerLogin login_;
  std::uint64_t id_;
  std::string label_;
  ParameterMap params_;
  std::shared_ptr<const ParameterMap> differences_base_;  // null: differences_ is stale
  ParameterMap differences_;
  ParameterMap applied_settings_;
  ServerStatements statements_;
  std::int32_t backend_pid_ = 0, backend_secret_ = 0;
  Clock::time_point created_at_ = Clock::now();
  std::chrono::system_clock::time_point connected_at_ = std::chrono::system_clock::now();
  Clock::time_point last_used_ = created_at_;
  Clock::time_point retire_at_ = Clock::time_point::max();
  char tx_status_ = 'I';
  int bound_worker_ = 0;
  std::atomic<bool> close_needed_{false};
  std::string out_;  // reusable write buffer
  // What a watch_while_idle() receive reports into. Shared with its handler, which may run
  // after the connection moved to another worker or closed; `generation` tells an old
  // watch's late report from the current one's.
  struct IdleWatch {
    std::atomic<std::uint32_t> generation{0};
    std::atomic<bool> spoke{false};
    std::array<char, 64> landing{};
  };
  std::shared_ptr<IdleWatch> idle_watch_;
  bool watching_ = false;
  std::pair<const char*, const char*> tls_names_{nullptr, nullptr};
};

}  // namespace pgmux::pooler
