// The admin console's SHOW commands: one table per command, read from live state, with
// PgBouncer's column names and order where the concept is the same and pgmux's own columns after.
#include "pooler/admin/admin_views.hpp"

#include "pooler/admin/admin_client_views.hpp"

#include <algorithm>
#include <map>

#include "pooler/config/settings.hpp"
#include "pooler/runtime.hpp"
#include "pooler/version.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

std::string target_name(int target) {
  return target < 0 ? std::string("primary") : "replica" + std::to_string(target);
}

}  // namespace

void append_table(std::string& out, const std::vector<std::string_view>& columns,
                  const std::vector<std::vector<std::string>>& rows) {
  pr::append_row_description(out, columns);
  std::vector<std::string_view> values;
  for (const auto& row : rows) {
    values.assign(row.begin(), row.end());
    pr::append_data_row(out, values);
  }
  pr::append_command_complete(out, "SHOW");
}

namespace {

void show_pools(Runtime& rt, const Config& config, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  rt.pools().for_each([&](Pool& pool) {
    const PoolStats s = pool.stats();
    const DatabaseConfig* db = config.find_database(s.database);
    const int cl_active = std::max(0, s.clients - s.waiting);
    // Cancels are forwarded at once, never queued: the cancel columns stay 0.
    rows.push_back({s.database, s.user, std::to_string(cl_active), std::to_string(s.waiting), "0",
                    "0", std::to_string(s.active), "0", "0", std::to_string(s.idle), "0", "0",
                    std::to_string(s.connecting), std::to_string(s.max_wait_us / 1000000),
                    std::to_string(s.max_wait_us % 1000000), db ? to_string(db->mode) : "session",
                    std::to_string(s.size), target_name(s.target)});
  });
  append_table(out,
               {"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
                "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
                "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode",
                "pool_size", "target"},
               rows);
}

// SHOW DATABASES in PgBouncer's column order (current_connections: open server connections to
// the primary), then pgmux's own: replicas and target.
void show_databases(Runtime& rt, const Config& config, std::string& out) {
  std::map<std::string, int> open;
  for (const auto& pool : rt.pools().all()) {
    if (pool->target() >= 0) continue;
    const PoolStats s = pool->stats();
    open[s.database] += s.active + s.idle + s.connecting;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, db] : config.databases) {
    rows.push_back({name, db.primary.host, std::to_string(db.primary.port), db.dbname, "",
                    std::to_string(db.pool_size),
                    std::to_string(std::min(config.pool.min_pool_size, db.pool_size)),
                    std::to_string(db.reserve_pool_size), to_string(db.mode),
                    std::to_string(db.max_db_connections), std::to_string(open[name]),
                    rt.pools().paused(name) ? "1" : "0", rt.disabled(name) ? "1" : "0",
                    std::to_string(db.replicas.size()), std::string(router::to_string(db.target))});
  }
  append_table(out,
               {"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
                "reserve_pool", "pool_mode", "max_connections", "current_connections", "paused",
                "disabled", "replicas", "target"},
               rows);
}

// One row per replica: where reads can go and why not.
void show_replicas(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  std::map<std::pair<std::string, int>, std::pair<int, int>> conns;  // active, idle
  for (const auto& pool : rt.pools().all()) {
    if (pool->target() < 0) continue;
    const PoolStats st = pool->stats();
    auto& c = conns[{st.database, st.target}];
    c.first += st.active;
    c.second += st.idle;
  }
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  for (const auto& r : rt.pools().routings()) {
    for (int i = 0; i < r->replica_count(); ++i) {
      const Endpoint& e = r->replica_endpoint(i);
      const lag::ReplicaLagState& lag = r->lag()->replica(i);
      const bool monitored = r->monitored();
      const auto sampled = lag.sampled_at_ns.load();
      lag::Exclusion why = lag.reason.load();
      // The monitor publishes a reason when its query returns; a sample that aged past
      // lag_stale_after_ms meanwhile already keeps reads away (DatabaseRouting::eligible).
      if (why == lag::Exclusion::none && r->lag()->stale(lag, now_ns)) why = lag::Exclusion::stale;
      const std::int64_t ban = r->ban_left_ms(i);
      std::string reason = !monitored ? "not monitored" : std::string(lag::to_string(why));
      if (ban > 0) reason = "banned (" + std::to_string(ban) + " ms left)";
      const auto c = conns[{r->name(), i}];
      rows.push_back({r->name(), e.host, std::to_string(e.port),
                      why == lag::Exclusion::promoted ? "promoted" : "replica",
                      r->eligible(i) ? "t" : "f", std::to_string(lag.lag_bytes.load()),
                      std::to_string(lag.lag_ms.load()),
                      sampled == 0 ? "-1" : std::to_string((now_ns - sampled) / 1000000), reason,
                      std::to_string(c.first), std::to_string(c.second),
                      std::to_string(r->reads(i)), std::to_string(e.weight)});
    }
  }
  append_table(out,
               {"database", "host", "port", "role", "eligible", "lag_bytes", "lag_ms",
                "sample_age_ms", "reason", "sv_active", "sv_idle", "reads_served", "weight"},
               rows);
}

// Routing decisions so far, per database and reason (reasons never taken are left out).
void show_routing(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : rt.pools().routings()) {
    for (int k = 0; k < router::kReasonCount; ++k) {
      const auto reason = static_cast<router::Reason>(k);
      if (const auto n = r->decisions(reason); n > 0) {
        rows.push_back({r->name(), std::string(router::to_string(reason)), std::to_string(n)});
      }
    }
  }
  append_table(out, {"database", "reason", "decisions"}, rows);
}

// SHOW STATS / STATS_TOTALS / STATS_AVERAGES, with PgBouncer's columns: totals since start,
// and averages over the last completed stats period (per second for counts and bytes, per
// transaction/query/wait for times, in microseconds).
// SHOW STATS's columns: PgBouncer 1.23's names and order.
std::vector<std::string_view> stats_columns(bool totals, bool averages) {
  std::vector<std::string_view> cols{"database"};
  if (totals && averages) {
    for (auto c : {"total_server_assignment_count",
                   "total_xact_count",
                   "total_query_count",
                   "total_received",
                   "total_sent",
                   "total_xact_time",
                   "total_query_time",
                   "total_wait_time",
                   "total_client_parse_count",
                   "total_server_parse_count",
                   "total_bind_count",
                   "avg_server_assignment_count",
                   "avg_xact_count",
                   "avg_query_count",
                   "avg_recv",
                   "avg_sent",
                   "avg_xact_time",
                   "avg_query_time",
                   "avg_wait_time",
                   "avg_client_parse_count",
                   "avg_server_parse_count",
                   "avg_bind_count",
                   "total_requests"}) {
      cols.emplace_back(c);
    }
  } else {
    for (auto c : {"server_assignment_count", "xact_count", "query_count", "bytes_received",
                   "bytes_sent", "xact_time", "query_time", "wait_time", "client_parse_count",
                   "server_parse_count", "bind_count"}) {
      cols.emplace_back(c);
    }
  }
  return cols;
}

// The averages of one database over the last stats period: rates per second, and times per
// transaction, query and wait.
void append_average_cells(std::vector<std::string>& row, const TrafficTotals& d, double seconds) {
  auto per_sec = [seconds](std::uint64_t v) {
    return std::to_string(seconds > 0 ? static_cast<std::uint64_t>(static_cast<double>(v) / seconds)
                                      : 0);
  };
  auto per = [](std::uint64_t v, std::uint64_t n) { return std::to_string(n > 0 ? v / n : 0); };
  row.push_back(per_sec(d.wait_count));
  row.push_back(per_sec(d.xact_count));
  row.push_back(per_sec(d.query_count));
  row.push_back(per_sec(d.bytes_received));
  row.push_back(per_sec(d.bytes_sent));
  row.push_back(per(d.xact_time_us, d.xact_count));
  row.push_back(per(d.query_time_us, d.query_count));
  row.push_back(per(d.wait_time_us, d.wait_count));
  row.push_back(per_sec(d.client_parse_count));
  row.push_back(per_sec(d.server_parse_count));
  row.push_back(per_sec(d.bind_count));
}

void show_stats(Runtime& rt, const Config& config, std::string& out, bool totals, bool averages) {
  auto now = rt.traffic_by_database();
  for (const auto& [name, db] : config.databases) now.try_emplace(name);
  const Runtime::StatsPeriod period = rt.last_stats_period();
  std::vector<std::vector<std::string>> rows;
  for (const auto& [db, t] : now) {
    std::vector<std::string> row{db};
    if (totals) {
      for (std::uint64_t v : {t.wait_count, t.xact_count, t.query_count, t.bytes_received,
                              t.bytes_sent, t.xact_time_us, t.query_time_us, t.wait_time_us,
                              t.client_parse_count, t.server_parse_count, t.bind_count}) {
        row.push_back(std::to_string(v));
      }
    }
    if (averages) {
      TrafficTotals d;
      if (auto it = period.delta.find(db); it != period.delta.end()) d = it->second;
      append_average_cells(row, d, period.seconds);
    }
    // Exporters written for PgBouncer 1.7 and older (Debian's prometheus-pgbouncer-exporter)
    // read total_requests, the old name of total_query_count.
    if (totals && averages) row.push_back(std::to_string(t.query_count));
    rows.push_back(std::move(row));
  }
  append_table(out, stats_columns(totals, averages), rows);
}

// SHOW CONFIG: every [pgmux], [pool] and [routing] setting from the settings table, named
// as SET names it, with its value, default and whether RELOAD and SET change it at once.
void show_config(const Config& config, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const SettingView& s : describe_settings(config)) {
    rows.push_back({std::string(s.name), console_text(s.value), console_text(s.default_value),
                    s.applies == Applies::at_once ? "yes" : "no"});
  }
  append_table(out, {"key", "value", "default", "changeable"}, rows);
}

void show_users(const Config& config, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, u] : config.users) {
    rows.push_back({name, u.mode ? to_string(*u.mode) : "", to_string(u.auth),
                    std::to_string(u.max_user_connections)});
  }
  append_table(out, {"name", "pool_mode", "auth", "max_user_connections"}, rows);
}

void show_state(Runtime& rt, std::string& out) {
  const bool paused = rt.pools().paused_anything();
  append_table(out, {"key", "value"},
               {{"active", !rt.draining() && !paused && !rt.suspended() ? "yes" : "no"},
                {"paused", paused ? "yes" : "no"},
                {"suspended", rt.suspended() ? "yes" : "no"},
                {"shutting_down", rt.draining() ? "yes" : "no"}});
}

// SHOW LISTS with PgBouncer's rows (pgmux resolves no DNS itself: the dns_* rows are 0).
void show_lists(Runtime& rt, const Config& config, std::string& out) {
  int pools = 0, used = 0, idle = 0, login = 0;
  for (const auto& pool : rt.pools().all()) {
    const PoolStats s = pool->stats();
    ++pools;
    used += s.active;
    idle += s.idle;
    login += s.connecting;
  }
  const int logged_in = static_cast<int>(rt.clients().snapshot().size());
  append_table(out, {"list", "items"},
               {{"databases", std::to_string(config.databases.size())},
                {"users", std::to_string(config.users.size())},
                {"peers", "0"},
                {"pools", std::to_string(pools)},
                {"peer_pools", "0"},
                {"free_clients", "0"},
                {"used_clients", std::to_string(rt.client_count())},
                {"login_clients", std::to_string(std::max(0, rt.client_count() - logged_in -
                                                                 rt.console_sessions().load()))},
                {"free_servers", std::to_string(idle)},
                {"used_servers", std::to_string(used)},
                {"login_servers", std::to_string(login)},
                {"dns_names", "0"},
                {"dns_zones", "0"},
                {"dns_queries", "0"},
                {"dns_pending", "0"}});
}

void show_help(std::string& out) {
  pr::append_notice(out,
                    {.severity = "NOTICE",
                     .sqlstate = "00000",
                     .message = "Console usage",
                     .detail = "SHOW HELP|VERSION|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|"
                               "STATS|STATS_TOTALS|STATS_AVERAGES|LISTS|STATE|MEM|REPLICAS|"
                               "ROUTING|PREPARED|PINNED; "
                               "SET key = value; RELOAD; PAUSE [db]; RESUME [db]; DISABLE db; "
                               "ENABLE db; RECONNECT [db]; KILL db; KILL_CLIENT id; SUSPEND; "
                               "WAIT_CLOSE [db]; BAN [db] host:port; UNBAN [db] host:port; "
                               "SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]"});
  pr::append_command_complete(out, "SHOW");
}

}  // namespace

bool append_show(Runtime& rt, const Config& config, const std::string& cmd, std::string& out) {
  using View = void (*)(Runtime&, const Config&, std::string&);
  static const std::pair<std::string_view, View> kViews[] = {
      {"SHOW HELP", [](Runtime&, const Config&, std::string& o) { show_help(o); }},
      {"SHOW VERSION", [](Runtime&, const Config&,
                          std::string& o) { append_table(o, {"version"}, {{kVersionString}}); }},
      {"SHOW POOLS", show_pools},
      {"SHOW DATABASES", show_databases},
      {"SHOW REPLICAS", [](Runtime& r, const Config&, std::string& o) { show_replicas(r, o); }},
      {"SHOW STATS",
       [](Runtime& r, const Config& c, std::string& o) { show_stats(r, c, o, true, true); }},
      {"SHOW STATS_TOTALS",
       [](Runtime& r, const Config& c, std::string& o) { show_stats(r, c, o, true, false); }},
      {"SHOW STATS_AVERAGES",
       [](Runtime& r, const Config& c, std::string& o) { show_stats(r, c, o, false, true); }},
      {"SHOW CONFIG", [](Runtime&, const Config& c, std::string& o) { show_config(c, o); }},
      {"SHOW USERS", [](Runtime&, const Config& c, std::string& o) { show_users(c, o); }},
      {"SHOW CLIENTS", [](Runtime& r, const Config&, std::string& o) { show_clients(r, o); }},
      {"SHOW SERVERS", [](Runtime& r, const Config&, std::string& o) { show_servers(r, o); }},
      {"SHOW PINNED", [](Runtime& r, const Config&, std::string& o) { show_pinned(r, o); }},
      {"SHOW PREPARED", [](Runtime& r, const Config&, std::string& o) { show_prepared(r, o); }},
      {"SHOW STATE", [](Runtime& r, const Config&, std::string& o) { show_state(r, o); }},
      {"SHOW LISTS", show_lists},
      {"SHOW MEM", show_mem},
      {"SHOW ROUTING", [](Runtime& r, const Config&, std::string& o) { show_routing(r, o); }},
  };
  for (const auto& [name, view] : kViews) {
    if (cmd == name) {
      view(rt, config, out);
      return true;
    }
  }
  return false;
}

}  // namespace pgmux::pooler
