// [pgmux] client_tls_* / server_tls_* (and their [databases.X] overrides), server_auth_*.
#include "pooler/config_security.hpp"

#include <fstream>
#include <sstream>

namespace pgmux::pooler {

namespace {

const std::vector<std::string_view> kTlsModes = {"disable", "allow",     "prefer",
                                                 "require", "verify-ca", "verify-full"};
const std::vector<std::string_view> kTlsVersions = {"TLSv1.2", "TLSv1.3"};

// The keys both legs share: PREFIX_mode, PREFIX_cert_file, PREFIX_key_file, PREFIX_ca_file,
// PREFIX_min_version.
void read_common_keys(TomlTable& t, const std::string& prefix, TlsMode& mode, std::string& cert,
                      std::string& key, std::string& ca, std::string& min_version) {
  if (int i = t.get_choice(prefix + "_mode", kTlsModes); i >= 0) mode = static_cast<TlsMode>(i);
  t.get(prefix + "_cert_file", cert);
  t.get(prefix + "_key_file", key);
  t.get(prefix + "_ca_file", ca);
  if (int i = t.get_choice(prefix + "_min_version", kTlsVersions); i >= 0) {
    min_version = kTlsVersions[i];
  }
}

}  // namespace

void read_client_tls_keys(TomlTable& t, ClientTlsSettings& s) {
  read_common_keys(t, "client_tls", s.mode, s.cert_file, s.key_file, s.ca_file, s.min_version);
  t.get("client_tls_ciphers", s.ciphers);
}

void read_server_tls_keys(TomlTable& t, ServerTlsSettings& s) {
  read_common_keys(t, "server_tls", s.mode, s.cert_file, s.key_file, s.ca_file, s.min_version);
}

void read_server_auth_keys(TomlTable& t, ServerAuthSettings& s) {
  if (const toml::value* v = t.find("server_auth_methods")) {
    std::vector<std::string> methods;
    t.get("server_auth_methods", methods);
    s.scram = s.md5 = s.cleartext = false;
    for (const std::string& m : methods) {
      if (m == "scram-sha-256") {
        s.scram = true;
      } else if (m == "md5") {
        s.md5 = true;
      } else if (m == "password") {
        s.cleartext = true;
      } else {
        t.fail(*v, "server_auth_methods",
               "unknown method \"" + m + "\" (expected scram-sha-256, md5, password)");
      }
    }
  }
  t.get("server_cleartext_without_tls", s.cleartext_without_tls);
  t.get("server_scram_max_iterations", s.max_scram_iterations, 1, 100000000);
}

void read_client_auth_keys(TomlTable& t, GeneralSettings& g) {
  t.get("hba_file", g.hba_file);
  t.get("auth_user", g.auth_user);
  t.get("auth_query", g.auth_query);
  t.get("auth_cache_ttl_ms", g.auth_cache_ttl_ms, 0, 7LL * 24 * 3600 * 1000);
}

void load_client_auth(Config& cfg) {
  const std::string& path = cfg.general.hba_file;
  bool cert_rules = false;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      throw ConfigError(cfg.source_file + ": [pgmux] hba_file: cannot open \"" + path + "\"");
    std::stringstream text;
    text << in.rdbuf();
    try {
      cfg.hba = std::make_shared<const HbaRules>(HbaRules::parse(text.str()));
    } catch (const std::invalid_argument& e) {
      throw ConfigError(path + ": " + e.what());
    }
    cert_rules = cfg.hba->uses(HbaMethod::cert);
  }
  for (const auto& [name, user] : cfg.users)
    cert_rules = cert_rules || user.auth == AuthMethod::cert;
  if (cert_rules &&
      (cfg.general.client_tls.mode == TlsMode::disable || cfg.general.client_tls.ca_file.empty())) {
    throw ConfigError(cfg.source_file +
                      ": certificate authentication needs client TLS with client_tls_ca_file "
                      "(the CA that signs client certificates)");
  }
  if (!cfg.general.auth_user.empty()) {
    const UserConfig* u = cfg.find_user(cfg.general.auth_user);
    if (u == nullptr || u->server_password.empty()) {
      throw ConfigError(cfg.source_file + ": key 'pgmux.auth_user': \"" + cfg.general.auth_user +
                        "\" must be a [users.X] table with a password pgmux can log in with");
    }
    if (cfg.general.auth_query.find("$1") == std::string::npos) {
      throw ConfigError(cfg.source_file + ": key 'pgmux.auth_query': needs $1 for the user name");
    }
  }
}

void build_tls_contexts(Config& cfg) {
  const std::string& file = cfg.source_file;
  try {
    if (cfg.general.client_tls.mode != TlsMode::disable) {
      cfg.client_tls_context = TlsContext::for_clients(cfg.general.client_tls);
    }
  } catch (const TlsError& e) {
    throw ConfigError(file + ": [pgmux] client TLS: " + e.what());
  }
  std::shared_ptr<const TlsContext> shared;
  for (auto& [name, db] : cfg.databases) {
    if (db.server_tls.mode == TlsMode::disable) continue;
    try {
      if (db.server_tls == cfg.general.server_tls) {
        if (!shared) shared = TlsContext::for_servers(cfg.general.server_tls);
        db.server_tls_context = shared;
      } else {
        db.server_tls_context = TlsContext::for_servers(db.server_tls);
      }
    } catch (const TlsError& e) {
      throw ConfigError(file + ": [databases." + name + "] server TLS: " + e.what());
    }
  }
}

}  // namespace pgmux::pooler
