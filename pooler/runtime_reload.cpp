// Configuration changes at run time: RELOAD (the file read again) and SET (one key
// overridden), each building a new immutable Config that the pools, routing, lag monitors and
// TLS contexts take over without dropping connected clients.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "pooler/config/settings.hpp"
#include "pooler/runtime.hpp"

namespace pgmux::pooler {

std::string Runtime::reload() {
  std::lock_guard serial(reload_mutex_);
  std::shared_ptr<const Config> fresh;
  service_.reloading();
  try {
    fresh = load_config(config()->source_file);
  } catch (const ConfigError& e) {
    spdlog::error("RELOAD refused, the running configuration stays: {}", e.what());
    service_.ready("RELOAD refused: " + std::string(e.what()));
    return e.what();
  }
  fresh = keep_promotions(fresh);
  apply_config(fresh, "RELOAD");
  service_.ready("configuration reloaded");
  spdlog::info("RELOAD: configuration reloaded from {} ({} database(s), {} user(s))",
               fresh->source_file, fresh->databases.size(), fresh->users.size());
  return "";
}

Runtime::SetResult Runtime::set_setting(std::string_view key, std::string_view value) {
  const std::optional<SettingView> info = find_setting(key);
  if (!info) {
    return {"42704", "unrecognized configuration parameter \"" + std::string(key) + "\""};
  }
  if (info->applies == Applies::after_restart) {
    return {"55P02",
            "parameter \"" + std::string(key) + "\" cannot be changed without restarting pgmux"};
  }
  if (info->kind == SettingKind::list) {
    return {"22023", "parameter \"" + std::string(key) +
                         "\" is a list: change it in the configuration file and RELOAD"};
  }
  SettingOverride o{.section = std::string(info->section),
                    .toml_key = std::string(info->key),
                    .value = std::string(value),
                    .kind = info->kind};
  if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
      value.back() == value.front()) {
    o.value = std::string(value.substr(1, value.size() - 2));
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
  apply_config(keep_promotions(fresh), "SET");
  spdlog::info("SET {} = {}", key, value);
  return {};
}

void Runtime::follow_promotion(const std::string& database, const lag::MonitorTarget& promoted,
                               std::uint32_t timeline) {
  std::lock_guard serial(reload_mutex_);
  auto moved = std::make_shared<Config>(*config());
  const auto it = moved->databases.find(database);
  if (it == moved->databases.end() || !it->second.follow_promotion) return;  // a RELOAD since
  DatabaseConfig& db = it->second;
  const auto replica = std::find_if(db.replicas.begin(), db.replicas.end(), [&](const Endpoint& e) {
    return e.host == promoted.host && e.port == promoted.port;
  });
  if (replica == db.replicas.end()) {
    spdlog::warn(
        "database {}: {}:{} was promoted but is no longer one of its replicas: writes "
        "stay where they are",
        database, promoted.host, promoted.port);
    return;
  }
  const Endpoint old = db.primary;
  db.primary = *replica;
  promoted_[database] = db.primary;
  spdlog::warn(
      "database {}: replica {}:{} was promoted (timeline {}): writes go to it from now on, "
      "none to {}:{} (roles = \"auto\")",
      database, db.primary.host, db.primary.port, timeline, old.host, old.port);
  apply_config(moved, "failover");
}

std::shared_ptr<const Config> Runtime::keep_promotions(std::shared_ptr<const Config> fresh) {
  if (promoted_.empty()) return fresh;
  auto kept = std::make_shared<Config>(*fresh);
  for (auto it = promoted_.begin(); it != promoted_.end();) {
    const auto db = kept->databases.find(it->first);
    const auto same = [&](const Endpoint& e) {
      return e.host == it->second.host && e.port == it->second.port;
    };
    const bool listed = db != kept->databases.end() && db->second.follow_promotion &&
                        std::any_of(db->second.replicas.begin(), db->second.replicas.end(), same);
    if (!listed || same(db->second.primary)) {
      it = promoted_.erase(it);  // the file names it as primary now, or no longer lists it
      continue;
    }
    spdlog::warn(
        "database {}: {}:{} stays the primary (promoted at run time); name it as the "
        "primary in the configuration file",
        it->first, it->second.host, it->second.port);
    db->second.primary = it->second;
    ++it;
  }
  return kept;
}

void Runtime::apply_config(const std::shared_ptr<const Config>& fresh, const char* what) {
  const auto old = config();
  // What running parts were built from and only a restart rebuilds.
  std::vector<std::string> restart;
  const std::vector<SettingView> before = describe_settings(*old);
  const std::vector<SettingView> after = describe_settings(*fresh);
  for (std::size_t i = 0; i < before.size(); ++i) {
    if (before[i].applies == Applies::after_restart && before[i].value != after[i].value) {
      restart.push_back("[" + std::string(before[i].section) + "] " + std::string(before[i].key));
    }
  }
  for (const auto& [name, db] : fresh->databases) {
    const DatabaseConfig* before_db = old->find_database(name);
    if (before_db == nullptr) continue;
    if (before_db->primary.host != db.primary.host || before_db->primary.port != db.primary.port) {
      // The pools move (PoolRegistry::reconfigure); the lag monitor follows.
      asio::post(main_io_, [this, name = name, primary = db.primary] {
        if (auto it = monitors_.find(name); it != monitors_.end()) {
          it->second->set_primary({primary.host, primary.port});
        }
      });
    }
    bool replicas_moved = before_db->replicas.size() != db.replicas.size();
    for (std::size_t i = 0; !replicas_moved && i < db.replicas.size(); ++i) {
      replicas_moved = before_db->replicas[i].host != db.replicas[i].host ||
                       before_db->replicas[i].port != db.replicas[i].port;
    }
    if (replicas_moved ||
        before_db->routing.lag_check_interval_ms != db.routing.lag_check_interval_ms ||
        before_db->routing.max_replica_lag_ms != db.routing.max_replica_lag_ms ||
        before_db->routing.max_replica_lag_bytes != db.routing.max_replica_lag_bytes ||
        before_db->max_db_connections != db.max_db_connections) {
      restart.push_back("databases." + name + " replicas, lag limits or max_db_connections");
    }
  }
  std::atomic_store(&config_, fresh);
  pools_.reconfigure(*fresh);
  if (old->general.log_level != fresh->general.log_level) {
    spdlog::set_level(spdlog::level::from_str(fresh->general.log_level));
  }
  for (const auto& item : restart) {
    spdlog::warn("{}: {} changed; that takes effect after a restart", what, item);
  }
}

}  // namespace pgmux::pooler
