// What the TOML reader cannot check key by key: TLS contexts built from the client_tls_* and
// server_tls_* settings, the hba file and the auth_user those settings name.
#include "pooler/config/config_security.hpp"

#include <fstream>
#include <sstream>

namespace pgmux::pooler {

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
