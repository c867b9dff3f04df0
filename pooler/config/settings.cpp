// The rows of the settings table. Order is the order of the docs and of SHOW CONFIG.
#include "pooler/config/settings.hpp"

#include <array>

namespace pgmux::pooler {

namespace {

constexpr std::int64_t kMaxMs = 7LL * 24 * 3600 * 1000;  // a week
constexpr auto at_once = Applies::at_once;
constexpr auto after_restart = Applies::after_restart;

constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 6> kTlsModes = {"disable", "allow",     "prefer",
                                                       "require", "verify-ca", "verify-full"};
constexpr std::array<std::string_view, 2> kTlsVersions = {"TLSv1.2", "TLSv1.3"};

// server_auth_methods is a list of words over three switches.
void read_server_auth_methods(TomlTable& t, const Setting<GeneralSettings>& s, GeneralSettings& g) {
  const toml::value* v = t.find(s.key);
  if (v == nullptr) return;
  std::vector<std::string> methods;
  t.get(s.key, methods);
  ServerAuthSettings& a = g.server_auth;
  a.scram = a.md5 = a.cleartext = false;
  for (const std::string& m : methods) {
    if (m == "scram-sha-256") {
      a.scram = true;
    } else if (m == "md5") {
      a.md5 = true;
    } else if (m == "password") {
      a.cleartext = true;
    } else {
      t.fail(*v, s.key, "unknown method \"" + m + "\" (expected scram-sha-256, md5, password)");
    }
  }
}

std::string show_server_auth_methods(const Setting<GeneralSettings>&, const GeneralSettings& g) {
  std::vector<std::string> methods;
  if (g.server_auth.scram) methods.emplace_back("scram-sha-256");
  if (g.server_auth.md5) methods.emplace_back("md5");
  if (g.server_auth.cleartext) methods.emplace_back("password");
  return toml_list(methods);
}

Setting<GeneralSettings> server_auth_methods_row() {
  return {.key = "server_auth_methods",
          .doc =
              "what pgmux answers when a server asks for a password (`scram-sha-256`, "
              "`md5`, `password`); anything else is refused (28000)",
          .kind = SettingKind::list,
          .read = read_server_auth_methods,
          .show = show_server_auth_methods};
}

using G = GeneralSettings;
using CT = ClientTlsSettings;
using TK = TcpKeepalive;
using ST = ServerTlsSettings;

}  // namespace

std::span<const Setting<GeneralSettings>> general_settings() {
  static const std::vector<Setting<G>> rows = {
      bind<&G::listen_addr>({.key = "listen_addr",
                             .applies = after_restart,
                             .doc = "address clients connect to (\"0.0.0.0\" for all IPv4)"}),
      bind<&G::listen_port>({.key = "listen_port",
                             .applies = after_restart,
                             .doc = "port clients connect to",
                             .min = 1,
                             .max = 65535}),
      bind<&G::so_reuseport>(
          {.key = "so_reuseport",
           .applies = after_restart,
           .doc = "SO_REUSEPORT on the client and metrics listeners: several pgmux processes "
                  "share one address (rolling restarts; see docs/deployment.md for "
                  "net.ipv4.tcp_migrate_req)"}),
      bind<&G::peer_id>({.key = "peer_id",
                         .applies = after_restart,
                         .doc = "this instance's number in a fleet (1-255; 0 = none): cancel "
                                "keys carry it, and [peers.ID] says where to forward a cancel "
                                "for another instance's client",
                         .min = 0,
                         .max = 255}),
      bind<&G::workers>({.key = "workers",
                         .applies = after_restart,
                         .doc = "worker threads, each with its own event loop; 0 = one per core",
                         .min = 0,
                         .max = 256}),
      bind<&G::admin_users>(
          {.key = "admin_users", .doc = "users allowed every admin console command"}),
      bind<&G::stats_users>(
          {.key = "stats_users", .doc = "users allowed SHOW commands in the admin console"}),
      bind<&G::log_level>(
          {.key = "log_level", .doc = "least severe level logged", .choices = kLogLevels}),
      bind<&G::max_message_size_bytes>(
          {.key = "max_message_size_bytes",
           .doc = "after login, the largest message pgmux holds whole to inspect it (Query, "
                  "Parse, Describe, Close; larger ones are refused with 08P01); Bind, CopyData "
                  "and DataRow stream at any size. Before login PostgreSQL's own limits apply: "
                  "10,000 bytes for the startup packet, 8 kB for a password or SASL message. "
                  "A change applies to clients that connect after it",
           .min = 1024,
           .max = 1LL << 30}),
      bind<&G::shutdown_timeout_ms>(
          {.key = "shutdown_timeout_ms",
           .doc = "SIGTERM and SHUTDOWN WAIT_FOR_SERVERS let transactions and sessions finish "
                  "for this long before pgmux exits anyway",
           .min = 0,
           .max = kMaxMs}),
      bind<&G::client_login_timeout_ms>(
          {.key = "client_login_timeout_ms",
           .doc = "time a client has to finish startup and authentication",
           .min = 100,
           .max = kMaxMs}),
      bind<&G::client_dormant_after_ms>(
          {.key = "client_dormant_after_ms",
           .doc = "a client idle this long (no server, nothing in flight) gives up all but its "
                  "socket and session state (about 0.5 kB); 0 = never",
           .min = 0,
           .max = kMaxMs}),
      bind<&G::stats_period_ms>(
          {.key = "stats_period_ms",
           .doc = "SHOW STATS averages cover the last completed period of this length",
           .min = 100,
           .max = kMaxMs}),
      bind<&G::metrics_listen>(
          {.key = "metrics_listen",
           .applies = after_restart,
           .doc = "\"host:port\" serving Prometheus /metrics and /healthz over HTTP; \"\" = off"}),
      bind<&G::client_tls, &CT::mode>(
          {.key = "client_tls_mode",
           .doc = "TLS for clients: `disable` (SSLRequest answered N), `allow`/`prefer` (TLS "
                  "when the client asks), `require` (plain-text clients refused, 28000), "
                  "`verify-ca` (a client certificate from client_tls_ca_file is demanded), "
                  "`verify-full` (and its CN must be the user name). PostgreSQL 17's direct TLS "
                  "(ALPN `postgresql`) is accepted whenever TLS is on",
           .choices = kTlsModes}),
      bind<&G::client_tls, &CT::cert_file>(
          {.key = "client_tls_cert_file",
           .doc = "pgmux's certificate (chain), PEM; needed unless client_tls_mode is disable. "
                  "RELOAD reads it again: new clients get the new certificate",
           .default_doc = "required unless disable"}),
      bind<&G::client_tls, &CT::key_file>(
          {.key = "client_tls_key_file",
           .doc = "its key, PEM, mode 0600 (or 0640 owned by root) as PostgreSQL demands",
           .default_doc = "required unless disable"}),
      bind<&G::client_tls, &CT::ca_file>(
          {.key = "client_tls_ca_file",
           .doc = "CA for client certificates (needed by verify-ca and verify-full)"}),
      bind<&G::client_tls, &CT::min_version>({.key = "client_tls_min_version",
                                              .doc = "oldest TLS version clients may use",
                                              .choices = kTlsVersions}),
      bind<&G::client_tls, &CT::ciphers>(
          {.key = "client_tls_ciphers",
           .doc = "TLS 1.2 cipher list, OpenSSL syntax (TLS 1.3 suites are OpenSSL's defaults)"}),
      bind<&G::server_tls, &ST::mode>(
          {.key = "server_tls_mode",
           .doc = "TLS towards PostgreSQL, as libpq's sslmode: `disable`, `allow` (plain first, "
                  "TLS if the server refuses plain text), `prefer`, `require`, `verify-ca` (the "
                  "certificate must chain to server_tls_ca_file), `verify-full` (and name the "
                  "host). Pools, cancels and the lag monitor all follow it",
           .choices = kTlsModes,
           .per_database = true}),
      bind<&G::server_tls, &ST::ca_file>(
          {.key = "server_tls_ca_file",
           .doc = "trusted roots for verify-ca and verify-full (e.g. the provider's CA bundle)",
           .per_database = true}),
      bind<&G::server_tls, &ST::cert_file>(
          {.key = "server_tls_cert_file",
           .doc = "a client certificate pgmux presents to servers (optional)",
           .per_database = true}),
      bind<&G::server_tls, &ST::key_file>(
          {.key = "server_tls_key_file", .doc = "its key, PEM", .per_database = true}),
      bind<&G::server_tls, &ST::min_version>({.key = "server_tls_min_version",
                                              .doc = "oldest TLS version towards servers",
                                              .choices = kTlsVersions,
                                              .per_database = true}),
      server_auth_methods_row(),
      bind<&G::server_auth, &ServerAuthSettings::cleartext_without_tls>(
          {.key = "server_cleartext_without_tls",
           .doc = "a server asking for a cleartext password gets it only over TLS unless this "
                  "is true"}),
      bind<&G::server_auth, &ServerAuthSettings::max_scram_iterations>(
          {.key = "server_scram_max_iterations",
           .doc = "a server asking for more SCRAM iterations is refused before any work is "
                  "done; key derivation runs on its own thread, once per user and salt",
           .min = 1,
           .max = 100000000}),
      bind<&G::hba_file>(
          {.key = "hba_file",
           .doc = "access rules in pg_hba.conf format (host/hostssl/hostnossl; trust, reject, "
                  "md5, scram-sha-256, cert); first match wins, no match is refused (28000); "
                  "re-read by RELOAD"}),
      bind<&G::auth_user>(
          {.key = "auth_user",
           .doc = "a configured user with a password that pgmux logs in as to fetch, with "
                  "auth_query on the database's primary, the secrets of users not in the config; "
                  "\"\" = off"}),
      bind<&G::auth_query>(
          {.key = "auth_query",
           .doc = "$1 is the user name; pg_shadow needs a superuser, so a SECURITY DEFINER "
                  "function owned by one is the least-privileged choice"}),
      bind<&G::tcp_keepalive, &TK::idle_s>(
          {.key = "tcp_keepalive_idle_s",
           .doc = "client and server sockets idle this long get TCP keepalive probes, so a peer "
                  "that vanished (a cut link, a dead host) is noticed; 0 = no keepalive. "
                  "Applies to connections made after a change (the lag monitor's after a "
                  "restart)",
           .min = 0,
           .max = 32767}),
      bind<&G::tcp_keepalive, &TK::interval_s>({.key = "tcp_keepalive_interval_s",
                                                .doc = "seconds between keepalive probes",
                                                .min = 1,
                                                .max = 32767}),
      bind<&G::tcp_keepalive, &TK::count>(
          {.key = "tcp_keepalive_count",
           .doc = "unanswered probes after which the kernel drops the connection",
           .min = 1,
           .max = 127}),
      bind<&G::server_tcp_user_timeout_ms>(
          {.key = "server_tcp_user_timeout_ms",
           .doc = "a server connection whose sent data stays unacknowledged this long is "
                  "dropped by the kernel (TCP_USER_TIMEOUT; keepalive only probes idle "
                  "links); 0 = the kernel's retransmission limit, about 15 minutes",
           .min = 0,
           .max = 3600000}),
      bind<&G::auth_cache_ttl_ms>(
          {.key = "auth_cache_ttl_ms",
           .doc = "auth_query answers are kept this long (at most 10,000); after half of it a "
                  "login is served from the cache and refreshes it in the background",
           .min = 0,
           .max = kMaxMs}),
  };
  return rows;
}

}  // namespace pgmux::pooler
