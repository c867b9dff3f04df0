// pgmux configuration: typed structs whose member initialisers are the one place defaults live,
// loaded from TOML. Unknown keys and bad values are rejected with file, line and key. A loaded
// Config is immutable and shared as shared_ptr<const Config>.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pooler/config/hba.hpp"
#include "pooler/config/setting_kind.hpp"
#include "pooler/net/tcp_keepalive.hpp"
#include "pooler/net/tls_context.hpp"
#include "protocol/scram.hpp"
#include "router/endpoint.hpp"
#include "router/policy.hpp"

namespace pgmux::pooler {

enum class PoolMode : std::uint8_t { session, transaction, statement };
enum class AuthMethod : std::uint8_t { scram_sha_256, md5, trust, cert };
// Transaction pooling: what to do when a client takes session-only state (LISTEN, session
// advisory lock, temp table, WITH HOLD cursor, SQL PREPARE).
enum class PinPolicy : std::uint8_t { pin, error };

[[nodiscard]] const char* to_string(PoolMode m);
[[nodiscard]] const char* to_string(AuthMethod m);

using Endpoint = router::Endpoint;

enum class ReadYourWrites : std::uint8_t { off, client, user };

// Read/write routing; [routing] holds the defaults, [databases.X] may override every key and
// [users.X] read_write_split and primary_reads.
struct RoutingSettings {
  // Reads go to replicas that are within the lag limits and have replayed the client's own
  // writes (read_your_writes); a database without replicas is unaffected.
  bool read_write_split = true;
  router::PrimaryReads primary_reads = router::PrimaryReads::fallback;
  router::Balancing load_balancing = router::Balancing::round_robin;
  std::int64_t replica_ban_ms = 15000;
  // A read sent to a replica with no answer after this long is re-run on the primary if the
  // replica has stopped answering its lag monitor too (checked again at each period).
  std::int64_t replica_read_timeout_ms = 1000;
  bool read_only_transactions_to_replicas = true;
  std::vector<std::string> write_functions, read_functions;
  // Replica lag (lag_monitor/): sampling, staleness, limits (-1: unset) with hysteresis.
  std::int64_t lag_check_interval_ms = 200;
  std::int64_t lag_stale_after_ms = 1000;
  std::int64_t max_replica_lag_ms = -1;
  std::int64_t max_replica_lag_bytes = -1;
  double readmit_ratio = 0.5;
  // After a write commits, a client's reads go only to replicas that replayed it: tracked per
  // client, per database user, or not at all.
  ReadYourWrites read_your_writes = ReadYourWrites::client;
  std::int64_t causal_wait_ms = 0;   // wait this long for a replica to catch up, then primary
  bool on_no_replica_error = false;  // primary_reads = "never" and no replica: error
  // The user whose credentials the lag monitor logs in with (global only; default: the first
  // user with a password pgmux can log in with).
  std::string lag_monitor_user;
};

// How pgmux may log in to PostgreSQL ([pgmux] server_auth_methods and friends).
struct ServerAuthSettings {
  bool scram = true, md5 = true, cleartext = true;  // server_auth_methods
  bool cleartext_without_tls = false;  // a cleartext password over a connection without TLS
  int max_scram_iterations = 100000;   // more is refused: PBKDF2 work is the server's to ask
};

struct GeneralSettings {
  std::string listen_addr = "127.0.0.1";
  std::uint16_t listen_port = 6432;
  // SO_REUSEPORT on the listeners: several pgmux processes share one address (rolling
  // restarts, one process per core); the kernel spreads new connections among them.
  bool so_reuseport = false;
  // This instance's number in a fleet (1-255; 0 = not in one). Cancel keys carry it, so a
  // CancelRequest that reaches another instance is forwarded to this one ([peers]).
  int peer_id = 0;
  int workers = 0;  // 0 = one per core
  std::vector<std::string> admin_users = {"admin"};
  std::vector<std::string> stats_users = {};
  std::string log_level = "info";
  std::size_t max_message_size_bytes = 64 * 1024 * 1024;
  std::int64_t shutdown_timeout_ms = 30000;
  std::int64_t client_login_timeout_ms = 15000;
  // A client idle (parked, holding no server) for this long gives up all but its socket and
  // its session state (session/dormant_clients.hpp); 0: never.
  std::int64_t client_dormant_after_ms = 2000;
  // SHOW STATS averages cover the last completed period of this length.
  std::int64_t stats_period_ms = 60000;
  // "host:port" serving Prometheus /metrics and /healthz over HTTP; empty: off.
  std::string metrics_listen;
  ClientTlsSettings client_tls;  // client_tls_*
  std::string hba_file;          // access rules in pg_hba.conf format; empty: users' auth
  // Users not in the config: auth_user (a configured user with a password) runs auth_query
  // on the primary of the client's database; answers cached for auth_cache_ttl_ms.
  std::string auth_user;
  std::string auth_query =
      "SELECT usename, CASE WHEN valuntil IS NULL OR valuntil > now() THEN passwd END "
      "FROM pg_catalog.pg_shadow WHERE usename = $1";
  std::int64_t auth_cache_ttl_ms = 60000;
  ServerTlsSettings server_tls;  // server_tls_*: defaults for every database
  // tcp_keepalive_*: probes on idle client and server sockets (user_timeout_ms unused here).
  TcpKeepalive tcp_keepalive;
  // TCP_USER_TIMEOUT on server sockets: unacknowledged data this old drops the connection.
  int server_tcp_user_timeout_ms = 30000;
  ServerAuthSettings server_auth;
};

// Pool defaults; [databases.X] may override size and mode.
struct PoolSettings {
  PoolMode mode = PoolMode::session;
  int size = 20;
  int max_client_conn = 10000;
  int min_pool_size = 0;  // server connections each pool keeps open even when idle
  // Extra connections a pool may open for a client that waited reserve_pool_timeout_ms; they
  // close again when they come back with nobody waiting.
  int reserve_pool_size = 0;
  std::int64_t reserve_pool_timeout_ms = 5000;
  // Caps across pools: server connections per database (all users) and per user (all
  // databases). 0 = no cap. [databases.X] and [users.X] may override them.
  int max_db_connections = 0;
  int max_user_connections = 0;
  // After a failed server login, a pool waits this long before trying again; meanwhile a
  // client that needs a new connection gets the login failure at once.
  std::int64_t server_login_retry_ms = 1000;
  // A client that needs a primary connection while the primary is down or restarting (57P03,
  // connection refused or lost) waits this long for it instead of failing.
  std::int64_t primary_wait_ms = 5000;
  int replica_pool_size = 0;  // server connections per replica pool; 0 = same as size
  std::int64_t query_wait_timeout_ms = 120000;
  std::int64_t server_idle_timeout_ms = 600000;
  std::int64_t server_lifetime_ms = 3600000;
  std::int64_t server_connect_timeout_ms = 5000;
  std::string server_reset_query = "DISCARD ALL";
  // Run on a server connection idle longer than server_check_delay_ms before reuse; a
  // connection that fails it is closed and another one used. Empty: never check.
  std::string server_check_query = "SELECT 1";
  std::int64_t server_check_delay_ms = 30000;
  // Transaction pooling: statements kept prepared per server connection (LRU beyond this).
  int max_prepared_statements = 256;
  // Transaction mode: a client idle this long inside a transaction is disconnected (25P03)
  // and its transaction rolled back; one idle this long holding no server is disconnected
  // (57P05). 0 = never.
  std::int64_t idle_transaction_timeout_ms = 0;
  std::int64_t client_idle_timeout_ms = 0;
  // Transaction mode: a request unanswered this long is cancelled and the client
  // disconnected (57014); its server is closed. 0 = never.
  std::int64_t query_timeout_ms = 0;
  // A client that has not taken the answer being forwarded to it for this long is closed and
  // its server's request cancelled: it must not hold a server by not reading. 0 = never.
  std::int64_t client_write_timeout_ms = 60000;
  PinPolicy pin_session_state = PinPolicy::pin;
};

struct DatabaseConfig {
  std::string name;    // what clients ask for
  std::string dbname;  // what the server calls it
  Endpoint primary;
  std::vector<Endpoint> replicas;
  int pool_size = 0;           // resolved: database override or [pool].size
  int reserve_pool_size = 0;   // resolved like pool_size
  int max_db_connections = 0;  // resolved; 0 = no cap
  int replica_pool_size = 0;   // resolved: database override, [pool].replica_pool_size or size
  // Session mode: "replica" makes this entry a read-only alias served by the replicas.
  router::Target target = router::Target::primary;
  // roles = "auto": a replica that is promoted (out of recovery, on a newer timeline) takes
  // the writes in place of `primary`, found by the lag monitor (lag_monitor/primary_election).
  bool follow_promotion = false;
  RoutingSettings routing;  // resolved: [routing] with this database's overrides
  PoolMode mode = PoolMode::session;
  ServerTlsSettings server_tls;  // resolved: [pgmux] server_tls_* with this database's
  std::shared_ptr<const TlsContext> server_tls_context;  // null when mode is disable
};

struct UserConfig {
  std::string name;
  AuthMethod auth = AuthMethod::scram_sha_256;
  // Secret used to verify clients: exactly one of these is filled for scram/md5.
  std::optional<protocol::ScramSecret> scram_secret;
  std::string md5_hash;  // "md5…" (from a plaintext password or given directly)
  // Password pgmux uses to log in to servers as this user; empty when none is known.
  std::string server_password;
  // Overrides the database's pool mode for this user.
  std::optional<PoolMode> mode;
  int max_user_connections = 0;          // resolved: user override or [pool]; 0 = no cap
  std::optional<bool> read_write_split;  // overrides the database's
  std::optional<router::PrimaryReads> primary_reads;  // overrides the database's
};

// SET key = value from the admin console: `value` replaces [section] toml_key, written as a
// TOML value of the setting's kind (a string when it does not parse as one).
struct SettingOverride {
  std::string section, toml_key, value;
  SettingKind kind = SettingKind::text;
};

struct Config {
  std::string source_file;
  GeneralSettings general;
  PoolSettings pool;
  RoutingSettings routing;
  std::map<std::string, DatabaseConfig, std::less<>> databases;
  // [peers.ID]: the other instances of a fleet, where cancels for their keys are forwarded.
  // An entry for this instance's own peer_id may be there (one file for the whole fleet).
  std::map<int, Endpoint> peers;
  // Parsed from general.hba_file; null without one (every client may try, users' auth).
  std::shared_ptr<const HbaRules> hba;
  // Built from general.client_tls; null when client_tls_mode is disable.
  std::shared_ptr<const TlsContext> client_tls_context;
  std::map<std::string, UserConfig, std::less<>> users;
  // What this config was built from: the file's text and the admin console's SET commands
  // since the file was last read (a RELOAD re-reads the file and drops them, as in PgBouncer).
  std::string source_text;
  std::vector<SettingOverride> overrides;

  [[nodiscard]] const DatabaseConfig* find_database(std::string_view name) const;
  [[nodiscard]] const UserConfig* find_user(std::string_view name) const;
  [[nodiscard]] bool is_admin(std::string_view user) const;
  [[nodiscard]] bool is_stats_user(std::string_view user) const;
  [[nodiscard]] int worker_count() const;
  // The pool mode for this database and user (a user's own mode wins).
  [[nodiscard]] static PoolMode mode_for(const DatabaseConfig& db, const UserConfig& user) {
    return user.mode.value_or(db.mode);
  }
  // The routing rules for this database and user (a user's own choices win).
  [[nodiscard]] static router::RoutingRules rules_for(const DatabaseConfig& db,
                                                      const UserConfig& user) {
    return {.read_write_split = user.read_write_split.value_or(db.routing.read_write_split),
            .primary_reads = user.primary_reads.value_or(db.routing.primary_reads),
            .read_only_transactions_to_replicas = db.routing.read_only_transactions_to_replicas};
  }
};

// A configuration problem; what() reads "FILE:LINE: key 'a.b': problem".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses and validates the file. Throws ConfigError.
[[nodiscard]] std::shared_ptr<const Config> load_config(const std::string& path);
[[nodiscard]] std::shared_ptr<const Config> load_config_from_string(
    const std::string& text, const std::string& name,
    const std::vector<SettingOverride>& overrides = {});

}  // namespace pgmux::pooler
