// TOML → Config. Each section is read by one function; defaults stay in the struct definitions.
#include "pooler/config/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "pooler/config/config_security.hpp"
#include "pooler/config/settings.hpp"
#include "pooler/config/toml_reader.hpp"
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
constexpr std::array<std::string_view, 3> kModes = {"session", "transaction", "statement"};

void read_general(TomlTable t, GeneralSettings& g) {
  read_settings(t, general_settings(), g);
  if (g.listen_addr.empty()) g.listen_addr = GeneralSettings{}.listen_addr;
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
  t.reject_unknown_keys();
}

void read_pool(TomlTable t, PoolSettings& p) {
  read_settings(t, pool_settings(), p);
  t.reject_unknown_keys();
}

void read_routing(TomlTable t, RoutingSettings& r) {
  read_settings(t, routing_settings(), r);
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

// [peers.ID] host/port: the fleet's instances by peer_id.
void read_peers(TomlTable& top, const toml::value& v, Config& cfg) {
  if (!v.is_table()) top.fail(v, "peers", "expected tables [peers.ID]");
  for (const auto& [id, pv] : v.as_table()) {
    int n = 0;
    const auto [end, err] = std::from_chars(id.data(), id.data() + id.size(), n);
    if (err != std::errc() || end != id.data() + id.size() || n < 1 || n > 255) {
      top.fail(pv, "peers." + id, "a peer's name is its peer_id, 1-255");
    }
    cfg.peers.emplace(n, read_endpoint(pv, "peers." + id, false));
  }
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
  if (int i = t.get_choice("roles", {"fixed", "auto"}); i >= 0) {
    d.follow_promotion = i == 1;
    if (d.follow_promotion && d.replicas.empty()) {
      t.fail(*t.find("roles"), "roles", "\"auto\" needs at least one entry in replicas");
    }
  }
  d.routing = routing;
  read_settings(t, routing_settings(), d.routing, true);
  if (int i = t.get_choice("mode", kModes); i >= 0) d.mode = static_cast<PoolMode>(i);
  GeneralSettings overrides;  // the [pgmux] rows a database may override: server_tls_*
  overrides.server_tls = tls;
  read_settings(t, general_settings(), overrides, true);
  d.server_tls = overrides.server_tls;
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
  if (int i = t.get_choice("read_write_split", {"off", "on"}); i >= 0) {
    u.read_write_split = i == 1;
  }
  if (int i = t.get_choice("primary_reads", {"never", "fallback", "always"}); i >= 0) {
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

// A SET value as a TOML value of its setting's kind; one that does not parse as that kind
// stays a string, so the reader's error names the type it expected.
toml::value override_value(const SettingOverride& o) {
  const std::string& v = o.value;
  char* end = nullptr;
  errno = 0;
  if (o.kind == SettingKind::integer && !v.empty()) {
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (*end == '\0' && errno == 0) return toml::value(static_cast<toml::integer>(n));
  } else if (o.kind == SettingKind::number && !v.empty()) {
    const double d = std::strtod(v.c_str(), &end);
    if (*end == '\0' && errno == 0) return toml::value(d);
  } else if (o.kind == SettingKind::boolean) {
    if (v == "on" || v == "true") return toml::value(true);
    if (v == "off" || v == "false") return toml::value(false);
  }
  return toml::value(v);
}

std::shared_ptr<const Config> build(const toml::value& root, const std::string& name) {
  auto cfg = std::make_shared<Config>();
  cfg->source_file = name;
  TomlTable top(root, "");
  if (const toml::value* v = top.find("pgmux")) read_general(TomlTable(*v, "pgmux"), cfg->general);
  if (const toml::value* v = top.find("pool")) read_pool(TomlTable(*v, "pool"), cfg->pool);
  if (const toml::value* v = top.find("routing")) {
    read_routing(TomlTable(*v, "routing"), cfg->routing);
  }
  if (const toml::value* v = top.find("databases")) {
    if (!v->is_table()) top.fail(*v, "databases", "expected tables [databases.NAME]");
    for (const auto& [db, dv] : v->as_table())
      cfg->databases.emplace(
          db, read_database(db, dv, cfg->pool, cfg->routing, cfg->general.server_tls));
  }
  if (const toml::value* v = top.find("peers")) read_peers(top, *v, *cfg);
  if (const toml::value* v = top.find("users")) {
    if (!v->is_table()) top.fail(*v, "users", "expected tables [users.NAME]");
    for (const auto& [user, uv] : v->as_table())
      cfg->users.emplace(user, read_user(user, uv, cfg->pool));
  }
  top.reject_unknown_keys();
  build_tls_contexts(*cfg);
  load_client_auth(*cfg);
  if (cfg->routing.lag_monitor_user.empty()) {
    for (const auto& [name, user] : cfg->users) {
      if (!user.server_password.empty()) {
        cfg->routing.lag_monitor_user = name;
        break;
      }
    }
  } else if (cfg->find_user(cfg->routing.lag_monitor_user) == nullptr) {
    throw ConfigError(name + ": key 'routing.lag_monitor_user': no [users." +
                      cfg->routing.lag_monitor_user + "] table");
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
      section.as_table()[o.toml_key] = override_value(o);
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

std::shared_ptr<const Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_from_string(ss.str(), path);
}

}  // namespace pgmux::pooler
