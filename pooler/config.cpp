// TOML → Config. Each section is read by one function; defaults stay in the struct definitions.
#include "pooler/config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "pooler/config_security.hpp"
#include "pooler/toml_reader.hpp"
#include "protocol/md5.hpp"

namespace pgmux::pooler {

const char* to_string(PoolMode m) {
  switch (m) {
    case PoolMode::session:
      return "session";
    case PoolMode::transaction:
      return "transaction";
    case PoolMode::statement:
      return "statement";
  }
  return "?";
}

const char* to_string(AuthMethod m) {
  switch (m) {
    case AuthMethod::scram_sha_256:
      return "scram-sha-256";
    case AuthMethod::md5:
      return "md5";
    case AuthMethod::trust:
      return "trust";
    case AuthMethod::cert:
      return "cert";
  }
  return "?";
}

const DatabaseConfig* Config::find_database(std::string_view name) const {
  auto it = databases.find(name);
  return it == databases.end() ? nullptr : &it->second;
}

const UserConfig* Config::find_user(std::string_view name) const {
  auto it = users.find(name);
  return it == users.end() ? nullptr : &it->second;
}

bool Config::is_admin(std::string_view user) const {
  return std::find(general.admin_users.begin(), general.admin_users.end(), user) !=
         general.admin_users.end();
}

bool Config::is_stats_user(std::string_view user) const {
  return is_admin(user) || std::find(general.stats_users.begin(), general.stats_users.end(),
                                     user) != general.stats_users.end();
}

int Config::worker_count() const {
  if (general.workers > 0) return general.workers;
  return std::max(1U, std::thread::hardware_concurrency());
}

namespace {

constexpr std::int64_t kMaxMs = 7LL * 24 * 3600 * 1000;  // a week
const std::vector<std::string_view> kModes = {"session", "transaction", "statement"};

void read_general(TomlTable t, GeneralSettings& g) {
  g.listen_addr.clear();
  t.get("listen_addr", g.listen_addr);
  if (g.listen_addr.empty()) g.listen_addr = GeneralSettings{}.listen_addr;
  int port = g.listen_port;
  t.get("listen_port", port, 1, 65535);
  g.listen_port = static_cast<std::uint16_t>(port);
  t.get("workers", g.workers, 0, 256);
  t.get("admin_users", g.admin_users);
  t.get("stats_users", g.stats_users);
  const std::vector<std::string_view> levels = {"trace", "debug", "info", "warn", "error"};
  if (int i = t.get_choice("log_level", levels); i >= 0) g.log_level = levels[i];
  std::int64_t max_msg = static_cast<std::int64_t>(g.max_message_size_bytes);
  t.get("max_message_size_bytes", max_msg, 1024, 1LL << 30);
  g.max_message_size_bytes = static_cast<std::size_t>(max_msg);
  t.get("shutdown_timeout_ms", g.shutdown_timeout_ms, 0, kMaxMs);
  t.get("client_login_timeout_ms", g.client_login_timeout_ms, 100, kMaxMs);
  t.get("client_dormant_after_ms", g.client_dormant_after_ms, 0, kMaxMs);
  t.get("stats_period_ms", g.stats_period_ms, 100, kMaxMs);
  t.get("metrics_listen", g.metrics_listen);
  if (!g.metrics_listen.empty()) {
    const auto colon = g.metrics_listen.rfind(':');
    int port = 0;
    if (colon != std::string::npos) {
      try {
        port = std::stoi(g.metrics_listen.substr(colon + 1));
      } catch (const std::exception&) {
      }
    }
    if (colon == std::string::npos || colon == 0 || port < 1 || port > 65535) {
      t.fail(*t.find("metrics_listen"), "metrics_listen", "expected \"host:port\"");
    }
  }
  read_client_tls_keys(t, g.client_tls);
  read_server_tls_keys(t, g.server_tls);
  read_server_auth_keys(t, g.server_auth);
  read_client_auth_keys(t, g);
  t.reject_unknown_keys();
}

void read_pool(TomlTable t, PoolSettings& p) {
  if (int i = t.get_choice("mode", kModes); i >= 0) p.mode = static_cast<PoolMode>(i);
  t.get("size", p.size, 1, 100000);
  t.get("max_client_conn", p.max_client_conn, 1, 1000000);
  t.get("min_pool_size", p.min_pool_size, 0, 100000);
  t.get("reserve_pool_size", p.reserve_pool_size, 0, 100000);
  t.get("reserve_pool_timeout_ms", p.reserve_pool_timeout_ms, 0, kMaxMs);
  t.get("max_db_connections", p.max_db_connections, 0, 1000000);
  t.get("max_user_connections", p.max_user_connections, 0, 1000000);
  t.get("server_login_retry_ms", p.server_login_retry_ms, 0, kMaxMs);
  t.get("replica_pool_size", p.replica_pool_size, 0, 100000);
  t.get("query_wait_timeout_ms", p.query_wait_timeout_ms, 1, kMaxMs);
  t.get("server_idle_timeout_ms", p.server_idle_timeout_ms, 0, kMaxMs);
  t.get("server_lifetime_ms", p.server_lifetime_ms, 0, kMaxMs);
  t.get("server_connect_timeout_ms", p.server_connect_timeout_ms, 1, kMaxMs);
  t.get("server_reset_query", p.server_reset_query);
  t.get("server_check_query", p.server_check_query);
  t.get("server_check_delay_ms", p.server_check_delay_ms, 0, kMaxMs);
  t.get("max_prepared_statements", p.max_prepared_statements, 1, 100000);
  t.get("idle_transaction_timeout_ms", p.idle_transaction_timeout_ms, 0, kMaxMs);
  t.get("client_idle_timeout_ms", p.client_idle_timeout_ms, 0, kMaxMs);
  t.get("query_timeout_ms", p.query_timeout_ms, 0, kMaxMs);
  if (int i = t.get_choice("pin_session_state", {"pin", "error"}); i >= 0) {
    p.pin_session_state = static_cast<PinPolicy>(i);
  }
  t.reject_unknown_keys();
}

const std::vector<std::string_view> kOnOff = {"off", "on"};
const std::vector<std::string_view> kPrimaryReads = {"never", "fallback", "always"};

// The routing keys of [routing] or [databases.X] (which starts from [routing]'s values).
void read_routing_keys(TomlTable& t, RoutingSettings& r) {
  if (int i = t.get_choice("read_write_split", kOnOff); i >= 0) r.read_write_split = i == 1;
  if (int i = t.get_choice("primary_reads", kPrimaryReads); i >= 0) {
    r.primary_reads = static_cast<router::PrimaryReads>(i);
  }
  if (int i = t.get_choice("load_balancing", {"round_robin", "least_connections"}); i >= 0) {
    r.load_balancing = static_cast<router::Balancing>(i);
  }
  t.get("replica_ban_ms", r.replica_ban_ms, 0, kMaxMs);
  t.get("read_only_transactions_to_replicas", r.read_only_transactions_to_replicas);
  t.get("write_functions", r.write_functions);
  t.get("read_functions", r.read_functions);
  t.get("lag_check_interval_ms", r.lag_check_interval_ms, 10, kMaxMs);
  t.get("lag_stale_after_ms", r.lag_stale_after_ms, 10, kMaxMs);
  t.get("max_replica_lag_ms", r.max_replica_lag_ms, 0, kMaxMs);
  t.get("max_replica_lag_bytes", r.max_replica_lag_bytes, 0, 1LL << 50);
  t.get("readmit_ratio", r.readmit_ratio, 0.0, 1.0);
  if (int i = t.get_choice("read_your_writes", {"off", "client", "user"}); i >= 0) {
    r.read_your_writes = static_cast<ReadYourWrites>(i);
  }
  t.get("causal_wait_ms", r.causal_wait_ms, 0, 60000);
  if (int i = t.get_choice("on_no_replica", {"primary", "error"}); i >= 0) {
    r.on_no_replica_error = i == 1;
  }
}

void read_routing(TomlTable t, RoutingSettings& r, std::string& monitor_user) {
  read_routing_keys(t, r);
  t.get("lag_monitor_user", monitor_user);
  t.reject_unknown_keys();
}

Endpoint read_endpoint(const toml::value& v, const std::string& path, bool replica) {
  TomlTable t(v, path);
  Endpoint e;
  e.host.clear();
  t.get("host", e.host);
  if (e.host.empty()) t.fail_table("needs a non-empty 'host'");
  int port = e.port;
  t.get("port", port, 1, 65535);
  e.port = static_cast<std::uint16_t>(port);
  if (replica) t.get("weight", e.weight, 1, 1000);
  t.reject_unknown_keys();
  return e;
}

DatabaseConfig read_database(const std::string& name, const toml::value& v, const PoolSettings& p,
                             const RoutingSettings& routing, const ServerTlsSettings& tls) {
  TomlTable t(v, "databases." + name);
  DatabaseConfig d;
  d.name = name;
  d.dbname = name;
  d.pool_size = p.size;
  d.reserve_pool_size = p.reserve_pool_size;
  d.max_db_connections = p.max_db_connections;
  d.mode = p.mode;
  t.get("dbname", d.dbname);
  const toml::value* primary = t.find("primary");
  if (primary == nullptr) t.fail_table("needs a 'primary' = { host = \"…\", port = … }");
  d.primary = read_endpoint(*primary, t.key_path("primary"), false);
  if (const toml::value* replicas = t.find("replicas")) {
    if (!replicas->is_array()) t.fail(*replicas, "replicas", "expected an array of tables");
    int i = 0;
    for (const auto& r : replicas->as_array()) {
      d.replicas.push_back(
          read_endpoint(r, t.key_path("replicas") + "[" + std::to_string(i++) + "]", true));
    }
  }
  t.get("pool_size", d.pool_size, 1, 100000);
  t.get("reserve_pool_size", d.reserve_pool_size, 0, 100000);
  t.get("max_db_connections", d.max_db_connections, 0, 1000000);
  d.replica_pool_size = p.replica_pool_size > 0 ? p.replica_pool_size : d.pool_size;
  t.get("replica_pool_size", d.replica_pool_size, 1, 100000);
  if (int i = t.get_choice("target", {"primary", "replica"}); i >= 0) {
    d.target = static_cast<router::Target>(i);
    if (d.target == router::Target::replica && d.replicas.empty()) {
      t.fail(*t.find("target"), "target", "\"replica\" needs at least one entry in replicas");
    }
  }
  d.routing = routing;
  read_routing_keys(t, d.routing);
  if (int i = t.get_choice("mode", kModes); i >= 0) d.mode = static_cast<PoolMode>(i);
  d.server_tls = tls;
  read_server_tls_keys(t, d.server_tls);
  t.reject_unknown_keys();
  return d;
}

bool looks_like_md5_hash(std::string_view s) {
  return s.size() == 35 && s.substr(0, 3) == "md5";
}

UserConfig read_user(const std::string& name, const toml::value& v, const PoolSettings& p) {
  TomlTable t(v, "users." + name);
  UserConfig u;
  u.name = name;
  u.max_user_connections = p.max_user_connections;
  t.get("max_user_connections", u.max_user_connections, 0, 1000000);
  if (int i = t.get_choice("read_write_split", kOnOff); i >= 0) u.read_write_split = i == 1;
  if (int i = t.get_choice("primary_reads", kPrimaryReads); i >= 0) {
    u.primary_reads = static_cast<router::PrimaryReads>(i);
  }
  const std::vector<std::string_view> methods = {"scram-sha-256", "md5", "trust", "cert"};
  if (int i = t.get_choice("auth", methods); i >= 0) u.auth = static_cast<AuthMethod>(i);
  std::string password;
  t.get("password", password);
  t.get("server_password", u.server_password);
  if (int i = t.get_choice("mode", kModes); i >= 0) u.mode = static_cast<PoolMode>(i);
  if (password.starts_with("SCRAM-SHA-256$")) {
    auto secret = protocol::parse_scram_secret(password);
    if (!secret) t.fail(*t.find("password"), "password", "malformed SCRAM-SHA-256 secret");
    u.scram_secret = *secret;
    if (u.auth == AuthMethod::md5) {
      t.fail(*t.find("password"), "password", "md5 auth needs a plaintext or md5 password");
    }
  } else if (looks_like_md5_hash(password)) {
    u.md5_hash = password;
    if (u.auth == AuthMethod::scram_sha_256) {
      t.fail(*t.find("password"), "password",
             "scram-sha-256 auth needs a plaintext or SCRAM secret");
    }
  } else if (!password.empty()) {
    u.scram_secret = protocol::make_scram_secret(password);
    u.md5_hash = protocol::md5_password_hash(name, password);
    if (u.server_password.empty()) u.server_password = password;
  } else if (u.auth != AuthMethod::trust && u.auth != AuthMethod::cert) {
    t.fail_table("needs a 'password' (or auth = \"trust\" or \"cert\")");
  }
  t.reject_unknown_keys();
  return u;
}

std::shared_ptr<const Config> build(const toml::value& root, const std::string& name) {
  auto cfg = std::make_shared<Config>();
  cfg->source_file = name;
  TomlTable top(root, "");
  if (const toml::value* v = top.find("pgmux")) read_general(TomlTable(*v, "pgmux"), cfg->general);
  if (const toml::value* v = top.find("pool")) read_pool(TomlTable(*v, "pool"), cfg->pool);
  if (const toml::value* v = top.find("routing")) {
    read_routing(TomlTable(*v, "routing"), cfg->routing, cfg->lag_monitor_user);
  }
  if (const toml::value* v = top.find("databases")) {
    if (!v->is_table()) top.fail(*v, "databases", "expected tables [databases.NAME]");
    for (const auto& [db, dv] : v->as_table())
      cfg->databases.emplace(
          db, read_database(db, dv, cfg->pool, cfg->routing, cfg->general.server_tls));
  }
  if (const toml::value* v = top.find("users")) {
    if (!v->is_table()) top.fail(*v, "users", "expected tables [users.NAME]");
    for (const auto& [user, uv] : v->as_table())
      cfg->users.emplace(user, read_user(user, uv, cfg->pool));
  }
  top.reject_unknown_keys();
  build_tls_contexts(*cfg);
  load_client_auth(*cfg);
  if (cfg->lag_monitor_user.empty()) {
    for (const auto& [name, user] : cfg->users) {
      if (!user.server_password.empty()) {
        cfg->lag_monitor_user = name;
        break;
      }
    }
  } else if (cfg->find_user(cfg->lag_monitor_user) == nullptr) {
    throw ConfigError(name + ": key 'routing.lag_monitor_user': no [users." +
                      cfg->lag_monitor_user + "] table");
  }
  return cfg;
}

}  // namespace

std::shared_ptr<const Config> load_config_from_string(
    const std::string& text, const std::string& name,
    const std::vector<SettingOverride>& overrides) {
  std::istringstream in(text);
  try {
    toml::value root = toml::parse(in, name);
    if (!root.is_table()) root = toml::table{};
    for (const SettingOverride& o : overrides) {
      toml::value& section = root.as_table()[o.section];
      if (!section.is_table()) section = toml::table{};
      if (o.integer) {
        section.as_table()[o.toml_key] =
            toml::value(static_cast<toml::integer>(std::stoll(o.value)));
      } else {
        section.as_table()[o.toml_key] = toml::value(o.value);
      }
    }
    auto built = build(root, name);
    auto cfg = std::const_pointer_cast<Config>(built);
    cfg->source_text = text;
    cfg->overrides = overrides;
    return cfg;
  } catch (const toml::exception& e) {
    throw ConfigError(e.what());
  } catch (const std::out_of_range&) {
    throw ConfigError(name + ": a SET value is out of range");
  }
}

const SettingInfo* find_setting(std::string_view key) {
  static const SettingInfo kSettings[] = {
      {"listen_addr", "pgmux", "listen_addr", false},
      {"listen_port", "pgmux", "listen_port", false},
      {"workers", "pgmux", "workers", false},
      {"log_level", "pgmux", "log_level", true},
      {"shutdown_timeout_ms", "pgmux", "shutdown_timeout_ms", true},
      {"client_login_timeout_ms", "pgmux", "client_login_timeout_ms", true},
      {"client_dormant_after_ms", "pgmux", "client_dormant_after_ms", true},
      {"stats_period_ms", "pgmux", "stats_period_ms", true},
      {"metrics_listen", "pgmux", "metrics_listen", false},
      {"pool_mode", "pool", "mode", true},
      {"default_pool_size", "pool", "size", true},
      {"min_pool_size", "pool", "min_pool_size", true},
      {"reserve_pool_size", "pool", "reserve_pool_size", true},
      {"reserve_pool_timeout_ms", "pool", "reserve_pool_timeout_ms", true},
      {"max_client_conn", "pool", "max_client_conn", true},
      {"max_db_connections", "pool", "max_db_connections", false},
      {"max_user_connections", "pool", "max_user_connections", false},
      {"query_wait_timeout_ms", "pool", "query_wait_timeout_ms", true},
      {"query_timeout_ms", "pool", "query_timeout_ms", true},
      {"idle_transaction_timeout_ms", "pool", "idle_transaction_timeout_ms", true},
      {"client_idle_timeout_ms", "pool", "client_idle_timeout_ms", true},
      {"server_idle_timeout_ms", "pool", "server_idle_timeout_ms", true},
      {"server_lifetime_ms", "pool", "server_lifetime_ms", true},
      {"server_connect_timeout_ms", "pool", "server_connect_timeout_ms", true},
      {"server_login_retry_ms", "pool", "server_login_retry_ms", true},
      {"server_reset_query", "pool", "server_reset_query", true},
      {"server_check_query", "pool", "server_check_query", true},
      {"server_check_delay_ms", "pool", "server_check_delay_ms", true},
      {"max_prepared_statements", "pool", "max_prepared_statements", true},
      {"read_write_split", "routing", "read_write_split", true},
      {"lag_check_interval_ms", "routing", "lag_check_interval_ms", false},
      {"lag_stale_after_ms", "routing", "lag_stale_after_ms", false},
      {"max_replica_lag_ms", "routing", "max_replica_lag_ms", false},
      {"max_replica_lag_bytes", "routing", "max_replica_lag_bytes", false},
      {"replica_ban_ms", "routing", "replica_ban_ms", false},
      {"causal_wait_ms", "routing", "causal_wait_ms", true},
  };
  for (const SettingInfo& s : kSettings) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::shared_ptr<const Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_from_string(ss.str(), path);
}

}  // namespace pgmux::pooler
