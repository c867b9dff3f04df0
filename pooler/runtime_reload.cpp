// Configuration changes at run time: RELOAD (the file read again) and SET (one key
// overridden), each building a new immutable Config that the pools, routing, lag monitors and
// TLS contexts take over without dropping connected clients.
#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"

namespace pgmux::pooler {

std::string Runtime::reload() {
  std::lock_guard serial(reload_mutex_);
  std::shared_ptr<const Config> fresh;
  try {
    fresh = load_config(config()->source_file);
  } catch (const ConfigError& e) {
    spdlog::error("RELOAD refused, the running configuration stays: {}", e.what());
    return e.what();
  }
  apply_config(fresh, "RELOAD");
  spdlog::info("RELOAD: configuration reloaded from {} ({} database(s), {} user(s))",
               fresh->source_file, fresh->databases.size(), fresh->users.size());
  return "";
}

Runtime::SetResult Runtime::set_setting(std::string_view key, std::string_view value) {
  const SettingInfo* info = find_setting(key);
  if (info == nullptr) {
    return {"42704", "unrecognized configuration parameter \"" + std::string(key) + "\""};
  }
  if (!info->changeable) {
    return {"55P02",
            "parameter \"" + std::string(key) + "\" cannot be changed without restarting pgmux"};
  }
  SettingOverride o{.section = std::string(info->section),
                    .toml_key = std::string(info->toml_key),
                    .value = std::string(value)};
  if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
      value.back() == value.front()) {
    o.value = std::string(value.substr(1, value.size() - 2));
  } else {
    const std::string_view digits = value.starts_with('-') ? value.substr(1) : value;
    o.integer = !digits.empty() && digits.size() <= 18 &&
                digits.find_first_not_of("0123456789") == std::string_view::npos;
  }
  std::lock_guard serial(reload_mutex_);
  const auto old = config();
  std::vector<SettingOverride> overrides = old->overrides;
  std::erase_if(overrides, [&](const SettingOverride& x) {
    return x.section == o.section && x.toml_key == o.toml_key;
  });
  overrides.push_back(o);
  std::shared_ptr<const Config> fresh;
  try {
    fresh = load_config_from_string(old->source_text, old->source_file, overrides);
  } catch (const ConfigError& e) {
    // The value has no place in the file: drop the "FILE:LINE: " the message starts with.
    std::string why = e.what();
    if (const auto at = why.find("key '"); at != std::string::npos) why.erase(0, at);
    return {"22023", "invalid value for parameter \"" + std::string(key) + "\": " + why};
  }
  apply_config(fresh, "SET");
  spdlog::info("SET {} = {}", key, value);
  return {};
}

void Runtime::apply_config(const std::shared_ptr<const Config>& fresh, const char* what) {
  const auto old = config();
  // What running parts were built from and only a restart rebuilds.
  std::vector<std::string> restart;
  const auto& a = old->general;
  const auto& b = fresh->general;
  if (a.listen_addr != b.listen_addr || a.listen_port != b.listen_port) {
    restart.emplace_back("listen_addr/listen_port");
  }
  if (old->worker_count() != fresh->worker_count()) restart.emplace_back("workers");
  if (a.metrics_listen != b.metrics_listen) restart.emplace_back("metrics_listen");
  for (const auto& [name, db] : fresh->databases) {
    const DatabaseConfig* before = old->find_database(name);
    if (before == nullptr) continue;
    if (before->primary.host != db.primary.host || before->primary.port != db.primary.port) {
      // The pools move (PoolRegistry::reconfigure); the lag monitor follows.
      asio::post(main_io_, [this, name = name, primary = db.primary] {
        if (auto it = monitors_.find(name); it != monitors_.end()) {
          it->second->set_primary({primary.host, primary.port});
        }
      });
    }
    bool replicas_moved = before->replicas.size() != db.replicas.size();
    for (std::size_t i = 0; !replicas_moved && i < db.replicas.size(); ++i) {
      replicas_moved = before->replicas[i].host != db.replicas[i].host ||
                       before->replicas[i].port != db.replicas[i].port;
    }
    if (replicas_moved ||
        before->routing.lag_check_interval_ms != db.routing.lag_check_interval_ms ||
        before->routing.max_replica_lag_ms != db.routing.max_replica_lag_ms ||
        before->routing.max_replica_lag_bytes != db.routing.max_replica_lag_bytes ||
        before->max_db_connections != db.max_db_connections) {
      restart.push_back("databases." + name + " replicas, lag limits or max_db_connections");
    }
  }
  std::atomic_store(&config_, fresh);
  pools_.reconfigure(*fresh);
  if (a.log_level != b.log_level) spdlog::set_level(spdlog::level::from_str(b.log_level));
  for (const auto& item : restart) {
    spdlog::warn("{}: {} changed; that takes effect after a restart", what, item);
  }
}

}  // namespace pgmux::pooler
