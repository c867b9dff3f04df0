// Function side-effect rules: built-in writes, config overrides, the pg_proc catalog.
#include "router/function_catalog.hpp"

#include <array>

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

bool always_write(std::string_view name) {
  for (std::string_view w : kAlwaysWrite) {
    if (name == w) return true;
  }
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

}  // namespace

FunctionCatalog::FunctionCatalog(std::vector<std::string> write_functions,
                                 std::vector<std::string> read_functions) {
  for (auto& f : write_functions) write_.insert(std::move(f));
  for (auto& f : read_functions) read_.insert(std::move(f));
}

bool FunctionCatalog::is_write(std::string_view name) const {
  if (write_.contains(name) || always_write(name)) return true;
  if (read_.contains(name)) return false;
  if (!loaded_) {
    for (std::string_view r : kBuiltinReads) {
      if (name == r) return false;
    }
    return true;
  }
  return !side_effect_free_.contains(name);
}

}  // namespace pgmux::router
