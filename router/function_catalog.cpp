// Function side-effect rules: built-in writes, config overrides, the pg_proc catalog.
#include "router/function_catalog.hpp"

#include <algorithm>
#include <array>
#include <span>

namespace pgmux::router {

namespace {

// Volatile built-ins whose effect matters for routing even though pg_proc would say so too:
// they must be judged writes before the catalog is read and whatever the config says, since
// sequences, locks, notifications and transaction ids only exist on the primary (currval and
// lastval read state of the session that called nextval there).
constexpr auto kAlwaysWrite = std::to_array<std::string_view>(
    {"nextval", "setval", "currval", "lastval", "pg_notify", "set_config", "txid_current",
     "pg_current_xact_id", "dblink_exec", "txid_current_if_assigned",
     "pg_current_xact_id_if_assigned", "pg_try_advisory_lock"});

bool listed(std::span<const std::string_view> list, std::string_view name);

bool always_write(std::string_view name) {
  if (listed(kAlwaysWrite, name)) return true;
  // pg_advisory_lock, pg_advisory_xact_lock_shared, pg_try_advisory_…, pg_advisory_unlock…
  if (name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_")) return true;
  return name.starts_with("lo_");  // large objects: lo_create, lo_import, lo_unlink, …
}

// Before the catalog is read: functions so common in reads that sending them to the primary
// would waste the replicas, and known to have no side effects.
constexpr auto kBuiltinReads = std::to_array<std::string_view>({"count",
                                                                "sum",
                                                                "avg",
                                                                "min",
                                                                "max",
                                                                "coalesce",
                                                                "nullif",
                                                                "lower",
                                                                "upper",
                                                                "length",
                                                                "now",
                                                                "date_trunc",
                                                                "array_agg",
                                                                "string_agg",
                                                                "json_agg",
                                                                "jsonb_agg",
                                                                "greatest",
                                                                "least",
                                                                "abs",
                                                                "round",
                                                                "to_char",
                                                                "extract",
                                                                "current_setting",
                                                                "version"});

// Built-ins PostgreSQL declares volatile only because their result may change from call to
// call, not because they change anything: reads, wherever they run.
constexpr auto kVolatileReads = std::to_array<std::string_view>(
    {"random", "random_normal", "clock_timestamp", "timeofday", "pg_sleep", "pg_sleep_for",
     "pg_sleep_until", "gen_random_uuid", "pg_is_in_recovery", "pg_last_wal_receive_lsn",
     "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_is_wal_replay_paused",
     "pg_get_wal_replay_pause_state", "setseed"});

bool listed(std::span<const std::string_view> list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

FunctionCatalog::FunctionCatalog(std::vector<std::string> write_functions,
                                 std::vector<std::string> read_functions) {
  for (auto& f : write_functions) write_.insert(std::move(f));
  for (auto& f : read_functions) read_.insert(std::move(f));
}

bool FunctionCatalog::is_write(std::string_view name) const {
  if (write_.contains(name) || always_write(name)) return true;
  if (read_.contains(name) || listed(kVolatileReads, name)) return false;
  if (!loaded_) return !listed(kBuiltinReads, name);
  return !side_effect_free_.contains(name);
}

}  // namespace pgmux::router
