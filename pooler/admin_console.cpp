// Admin console command handling: parse one simple Query, answer with rows or an error.
#include "pooler/admin_console.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "pooler/client_session.hpp"
#include "pooler/runtime.hpp"
#include "pooler/version.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

// Upper-cased command with the trailing ';' and surrounding blanks removed.
std::string normalize(std::string_view sql) {
  std::string s(sql);
  while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == ';')) {
    s.pop_back();
  }
  const auto first = s.find_first_not_of(" \t\r\n");
  s.erase(0, first == std::string::npos ? s.size() : first);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  // Collapse runs of whitespace so "SHOW   POOLS" matches.
  std::string out;
  for (char c : s) {
    const bool space = std::isspace(static_cast<unsigned char>(c));
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : c);
  }
  return out;
}

// Appends RowDescription + DataRows + CommandComplete for a text table.
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

void show_pools(Runtime& rt, const Config& config, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  rt.pools().for_each([&](Pool& pool) {
    const PoolStats s = pool.stats();
    const DatabaseConfig* db = config.find_database(s.database);
    const int cl_active = std::max(0, s.clients - s.waiting);
    rows.push_back({s.database, s.user, std::to_string(cl_active), std::to_string(s.waiting),
                    std::to_string(s.active), std::to_string(s.idle), "0", "0",
                    std::to_string(s.connecting), std::to_string(s.max_wait_us / 1000000),
                    std::to_string(s.max_wait_us % 1000000), db ? to_string(db->mode) : "session",
                    std::to_string(s.size),
                    s.target < 0 ? std::string("primary") : "replica" + std::to_string(s.target)});
  });
  append_table(
      out,
      {"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used",
       "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode", "pool_size", "target"},
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
      const lag::Exclusion why = lag.reason.load();
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
void show_stats(Runtime& rt, const Config& config, std::string& out, bool totals, bool averages) {
  auto now = rt.traffic_by_database();
  for (const auto& [name, db] : config.databases) now.try_emplace(name);
  const Runtime::StatsPeriod period = rt.last_stats_period();
  auto per_sec = [&](std::uint64_t v) {
    return std::to_string(period.seconds > 0
                              ? static_cast<std::uint64_t>(static_cast<double>(v) / period.seconds)
                              : 0);
  };
  auto per = [](std::uint64_t v, std::uint64_t n) { return std::to_string(n > 0 ? v / n : 0); };
  std::vector<std::vector<std::string>> rows;
  for (const auto& [db, t] : now) {
    std::vector<std::string> row{db};
    if (totals) {
      for (std::uint64_t v : {t.xact_count, t.query_count, t.bytes_received, t.bytes_sent,
                              t.xact_time_us, t.query_time_us, t.wait_time_us}) {
        row.push_back(std::to_string(v));
      }
    }
    if (averages) {
      TrafficTotals d;
      if (auto it = period.delta.find(db); it != period.delta.end()) d = it->second;
      row.push_back(per_sec(d.xact_count));
      row.push_back(per_sec(d.query_count));
      row.push_back(per_sec(d.bytes_received));
      row.push_back(per_sec(d.bytes_sent));
      row.push_back(per(d.xact_time_us, d.xact_count));
      row.push_back(per(d.query_time_us, d.query_count));
      row.push_back(per(d.wait_time_us, d.wait_count));
    }
    rows.push_back(std::move(row));
  }
  std::vector<std::string_view> cols{"database"};
  if (totals && averages) {
    for (auto c : {"total_xact_count", "total_query_count", "total_received", "total_sent",
                   "total_xact_time", "total_query_time", "total_wait_time", "avg_xact_count",
                   "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
                   "avg_wait_time"}) {
      cols.emplace_back(c);
    }
  } else {
    for (auto c : {"xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time",
                   "query_time", "wait_time"}) {
      cols.emplace_back(c);
    }
  }
  append_table(out, cols, rows);
}

// SHOW CONFIG: key, value, default, changeable (by RELOAD) for the global settings.
void show_config(const Config& config, std::string& out) {
  const GeneralSettings& g = config.general;
  const GeneralSettings gd;
  const PoolSettings& p = config.pool;
  const PoolSettings pd;
  const RoutingSettings& r = config.routing;
  const RoutingSettings rd;
  std::vector<std::vector<std::string>> rows;
  auto add = [&](std::string key, auto value, auto def, bool changeable) {
    auto text = [](const auto& v) {
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
        return v;
      } else if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>) {
        return std::string(v ? "on" : "off");
      } else {
        return std::to_string(v);
      }
    };
    rows.push_back({std::move(key), text(value), text(def), changeable ? "yes" : "no"});
  };
  add("listen_addr", g.listen_addr, gd.listen_addr, false);
  add("listen_port", static_cast<int>(g.listen_port), static_cast<int>(gd.listen_port), false);
  add("workers", config.worker_count(), gd.workers, false);
  add("log_level", g.log_level, gd.log_level, false);
  add("shutdown_timeout_ms", g.shutdown_timeout_ms, gd.shutdown_timeout_ms, true);
  add("client_login_timeout_ms", g.client_login_timeout_ms, gd.client_login_timeout_ms, true);
  add("stats_period_ms", g.stats_period_ms, gd.stats_period_ms, false);
  add("metrics_listen", g.metrics_listen, gd.metrics_listen, false);
  add("pool_mode", std::string(to_string(p.mode)), std::string(to_string(pd.mode)), true);
  add("default_pool_size", p.size, pd.size, true);
  add("min_pool_size", p.min_pool_size, pd.min_pool_size, true);
  add("reserve_pool_size", p.reserve_pool_size, pd.reserve_pool_size, true);
  add("reserve_pool_timeout_ms", p.reserve_pool_timeout_ms, pd.reserve_pool_timeout_ms, true);
  add("max_client_conn", p.max_client_conn, pd.max_client_conn, true);
  add("max_db_connections", p.max_db_connections, pd.max_db_connections, false);
  add("max_user_connections", p.max_user_connections, pd.max_user_connections, false);
  add("query_wait_timeout_ms", p.query_wait_timeout_ms, pd.query_wait_timeout_ms, true);
  add("query_timeout_ms", p.query_timeout_ms, pd.query_timeout_ms, true);
  add("idle_transaction_timeout_ms", p.idle_transaction_timeout_ms, pd.idle_transaction_timeout_ms,
      true);
  add("client_idle_timeout_ms", p.client_idle_timeout_ms, pd.client_idle_timeout_ms, true);
  add("server_idle_timeout_ms", p.server_idle_timeout_ms, pd.server_idle_timeout_ms, true);
  add("server_lifetime_ms", p.server_lifetime_ms, pd.server_lifetime_ms, true);
  add("server_connect_timeout_ms", p.server_connect_timeout_ms, pd.server_connect_timeout_ms, true);
  add("server_login_retry_ms", p.server_login_retry_ms, pd.server_login_retry_ms, true);
  add("server_reset_query", p.server_reset_query, pd.server_reset_query, true);
  add("server_check_query", p.server_check_query, pd.server_check_query, true);
  add("server_check_delay_ms", p.server_check_delay_ms, pd.server_check_delay_ms, true);
  add("max_prepared_statements", p.max_prepared_statements, pd.max_prepared_statements, true);
  add("read_write_split", r.read_write_split, rd.read_write_split, true);
  add("lag_check_interval_ms", r.lag_check_interval_ms, rd.lag_check_interval_ms, false);
  add("lag_stale_after_ms", r.lag_stale_after_ms, rd.lag_stale_after_ms, false);
  add("max_replica_lag_ms", r.max_replica_lag_ms, rd.max_replica_lag_ms, false);
  add("max_replica_lag_bytes", r.max_replica_lag_bytes, rd.max_replica_lag_bytes, false);
  add("replica_ban_ms", r.replica_ban_ms, rd.replica_ban_ms, false);
  add("causal_wait_ms", r.causal_wait_ms, rd.causal_wait_ms, true);
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
               {{"active", !rt.draining() && !paused ? "yes" : "no"},
                {"paused", paused ? "yes" : "no"},
                {"suspended", "no"},
                {"shutting_down", rt.draining() ? "yes" : "no"}});
}

void show_lists(Runtime& rt, const Config& config, std::string& out) {
  int pools = 0, used = 0, idle = 0;
  for (const auto& pool : rt.pools().all()) {
    const PoolStats s = pool->stats();
    ++pools;
    used += s.active;
    idle += s.idle;
  }
  append_table(out, {"list", "items"},
               {{"databases", std::to_string(config.databases.size())},
                {"users", std::to_string(config.users.size())},
                {"pools", std::to_string(pools)},
                {"used_clients", std::to_string(rt.client_count())},
                {"used_servers", std::to_string(used)},
                {"free_servers", std::to_string(idle)}});
}

// The argument after a one-word command ("PAUSE app" → "app"), as typed (not upper-cased).
std::string argument(std::string_view sql) {
  std::string s(sql);
  while (!s.empty() && (s.back() == ';' || std::isspace(static_cast<unsigned char>(s.back())))) {
    s.pop_back();
  }
  const auto start = s.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "";
  const auto space = s.find_first_of(" \t\r\n", start);
  if (space == std::string::npos) return "";
  const auto arg = s.find_first_not_of(" \t\r\n", space);
  return arg == std::string::npos ? "" : s.substr(arg);
}

// Admin-only commands that answer at once. False when `cmd` is none of them.
bool control(Runtime& rt, const Config& config, const std::string& cmd, std::string_view sql,
             std::string& out) {
  const std::string verb = cmd.substr(0, cmd.find(' '));
  const std::string arg = argument(sql);
  auto error = [&](const char* sqlstate, std::string message) {
    pr::append_error(out,
                     {.severity = "ERROR", .sqlstate = sqlstate, .message = std::move(message)});
    return true;
  };
  if (verb == "DISABLE" || verb == "ENABLE") {
    if (arg.empty() || config.find_database(arg) == nullptr) {
      return error("3D000", "database \"" + arg + "\" does not exist in pgmux");
    }
    rt.set_disabled(arg, verb == "DISABLE");
    spdlog::info("{} {}", verb, arg);
    pr::append_command_complete(out, verb);
    return true;
  }
  if (verb == "BAN" || verb == "UNBAN") {
    // BAN host:port (every database using that replica) or BAN db host:port.
    std::string db, target = arg;
    if (const auto sp = arg.find(' '); sp != std::string::npos) {
      db = arg.substr(0, sp);
      target = arg.substr(arg.find_first_not_of(' ', sp));
    }
    int hits = 0;
    for (const auto& r : rt.pools().routings()) {
      if (!db.empty() && r->name() != db) continue;
      for (int i = 0; i < r->replica_count(); ++i) {
        const Endpoint& e = r->replica_endpoint(i);
        if (e.host + ":" + std::to_string(e.port) != target) continue;
        r->set_manual_ban(i, verb == "BAN");
        ++hits;
      }
    }
    if (hits == 0) return error("42704", "no replica \"" + target + "\" is in use");
    pr::append_command_complete(out, verb);
    return true;
  }
  if (verb == "KILL_CLIENT") {
    std::uint64_t id = 0;
    try {
      id = std::stoull(arg);
    } catch (const std::exception&) {
      return error("22023", "KILL_CLIENT needs a client id (see SHOW CLIENTS)");
    }
    const auto client = rt.clients().find(id);
    if (!client || !client->kill) return error("42704", "no client with id " + arg);
    spdlog::info("KILL_CLIENT {}: closing {}@{} {}", id, client->user, client->database,
                 client->address);
    client->kill();
    pr::append_command_complete(out, "KILL_CLIENT");
    return true;
  }
  if (verb == "SHUTDOWN") {
    spdlog::info("SHUTDOWN from the admin console: no longer accepting; waiting for clients");
    rt.request_shutdown();
    pr::append_command_complete(out, "SHUTDOWN");
    return true;
  }
  if (verb == "RELOAD") {
    if (const std::string e = rt.reload(); !e.empty()) {
      pr::append_error(out, {.severity = "ERROR",
                             .sqlstate = "F0000",
                             .message = "configuration not reloaded: " + e,
                             .hint = "the running configuration stays in effect"});
    } else {
      pr::append_command_complete(out, "RELOAD");
    }
    return true;
  }
  return false;
}

// SHOW CLIENTS with PgBouncer's leading columns (state is active, waiting or idle here).
void show_clients(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  for (const auto& c : rt.clients().snapshot()) {
    const ClientState st = c->state.load();
    const std::int64_t waited =
        st == ClientState::waiting ? now_us - c->waiting_since_us.load() : 0;
    const auto t = std::chrono::system_clock::to_time_t(c->connected_at);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    rows.push_back({"C", c->user, c->database,
                    st == ClientState::active    ? "active"
                    : st == ClientState::waiting ? "waiting"
                                                 : "idle",
                    c->address, std::to_string(c->port), when, std::to_string(waited / 1000000),
                    std::to_string(waited % 1000000), std::to_string(c->id), c->application_name,
                    c->pinned.load()});
  }
  append_table(out,
               {"type", "user", "database", "state", "addr", "port", "connect_time", "wait",
                "wait_us", "id", "application_name", "pinned"},
               rows);
}

// SHOW PINNED: clients held to their server by session-only state, and why.
void show_pinned(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : rt.clients().snapshot()) {
    const std::string why = c->pinned.load();
    if (why.empty()) continue;
    rows.push_back({std::to_string(c->id), c->user, c->database, c->address,
                    std::to_string(c->port), c->application_name, why});
  }
  append_table(out, {"id", "user", "database", "addr", "port", "application_name", "reason"}, rows);
}

// SHOW SERVERS in PgBouncer's column order (what pgmux does not track is empty or 0).
void show_servers(Runtime& rt, std::string& out) {
  std::set<std::uint64_t> idle;
  for (const auto& pool : rt.pools().all()) {
    for (std::uint64_t id : pool->idle_ids()) idle.insert(id);
  }
  std::vector<std::vector<std::string>> rows;
  for (const ServerRow& s : rt.pools().servers().snapshot()) {
    const auto t = std::chrono::system_clock::to_time_t(s.connected_at);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    rows.push_back({"S", s.user, s.database, idle.contains(s.id) ? "idle" : "active", s.host,
                    std::to_string(s.port), "", "", when, when, "0", "0", "0", "", "",
                    std::to_string(s.backend_pid), "", std::to_string(s.id)});
  }
  append_table(out,
               {"type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
                "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link",
                "remote_pid", "tls", "id"},
               rows);
}

void show_help(std::string& out) {
  pr::append_notice(
      out, {.severity = "NOTICE",
            .sqlstate = "00000",
            .message = "Console usage",
            .detail = "SHOW HELP|VERSION|POOLS|DATABASES|STATS|STATS_TOTALS|"
                      "STATS_AVERAGES|REPLICAS|ROUTING|CONFIG|USERS|STATE|LISTS|CLIENTS|SERVERS|"
                      "PINNED; "
                      "PAUSE [db]; "
                      "RESUME [db]; DISABLE db; ENABLE db; BAN [db] host:port; "
                      "UNBAN [db] host:port; KILL_CLIENT id; RELOAD; SHUTDOWN"});
  pr::append_command_complete(out, "SHOW");
}

// Runs one command, appending its rows or an ErrorResponse (no ReadyForQuery).
void execute(Runtime& rt, const Config& config, const std::string& cmd, std::string& out) {
  if (cmd == "SHOW HELP") return show_help(out);
  if (cmd == "SHOW VERSION") return append_table(out, {"version"}, {{kVersionString}});
  if (cmd == "SHOW POOLS") return show_pools(rt, config, out);
  if (cmd == "SHOW DATABASES") return show_databases(rt, config, out);
  if (cmd == "SHOW REPLICAS") return show_replicas(rt, out);
  if (cmd == "SHOW STATS") return show_stats(rt, config, out, true, true);
  if (cmd == "SHOW CONFIG") return show_config(config, out);
  if (cmd == "SHOW USERS") return show_users(config, out);
  if (cmd == "SHOW CLIENTS") return show_clients(rt, out);
  if (cmd == "SHOW SERVERS") return show_servers(rt, out);
  if (cmd == "SHOW PINNED") return show_pinned(rt, out);
  if (cmd == "SHOW STATE") return show_state(rt, out);
  if (cmd == "SHOW LISTS") return show_lists(rt, config, out);
  if (cmd == "SHOW STATS_TOTALS") return show_stats(rt, config, out, true, false);
  if (cmd == "SHOW STATS_AVERAGES") return show_stats(rt, config, out, false, true);
  if (cmd == "SHOW ROUTING") return show_routing(rt, out);
  if (cmd.empty()) {
    pr::append_empty_query(out);
    return;
  }
  pr::append_error(out, {.severity = "ERROR",
                         .sqlstate = "42601",
                         .message = "unknown or unsupported admin console command",
                         .hint = "SHOW HELP lists the commands"});
}

// PAUSE [db]: holds new transactions and returns once every server connection of the
// affected pools is back (running transactions finish). RESUME [db] lets them go.
awaitable<void> pause_or_resume(Runtime& rt, const Config& config, const std::string& cmd,
                                const std::string& original, std::string& out) {
  const bool pause = cmd.starts_with("PAUSE");
  std::string db;
  if (const auto space = original.find_first_of(" \t"); space != std::string::npos) {
    db = original.substr(space);
    db.erase(0, db.find_first_not_of(" \t"));
    while (!db.empty() &&
           (db.back() == ';' || std::isspace(static_cast<unsigned char>(db.back())))) {
      db.pop_back();
    }
  }
  if (!db.empty() && config.find_database(db) == nullptr) {
    pr::append_error(out, {.severity = "ERROR",
                           .sqlstate = "3D000",
                           .message = "database \"" + db + "\" does not exist in pgmux"});
    co_return;
  }
  if (!pause) {
    if (!rt.pools().set_paused(db, false)) {
      pr::append_error(out, {.severity = "ERROR",
                             .sqlstate = "55000",
                             .message = db.empty() ? "pgmux is not paused"
                                                   : "database \"" + db + "\" is not paused"});
      co_return;
    }
    spdlog::info("RESUME {}", db.empty() ? "(all databases)" : db);
    pr::append_command_complete(out, "RESUME");
    co_return;
  }
  rt.pools().set_paused(db, true);
  spdlog::info("PAUSE {}: waiting for active transactions to finish",
               db.empty() ? "(all databases)" : db);
  asio::steady_timer poll(co_await asio::this_coro::executor);
  while (rt.pools().active_servers(db) > 0) {
    poll.expires_after(Millis(10));
    co_await poll.async_wait(as_result);
  }
  spdlog::info("PAUSE {}: paused", db.empty() ? "(all databases)" : db);
  pr::append_command_complete(out, "PAUSE");
}

}  // namespace

awaitable<void> run_admin_console(Runtime& rt, FramedSocket& client, const Config& config,
                                  const std::string& user, const std::string& label) {
  if (!config.is_stats_user(user)) {
    throw SessionError("28000", "user \"" + user + "\" is not allowed to use the admin console");
  }
  std::string out;
  pr::append_parameter_status(out, "server_version", kPgCompatVersion);
  pr::append_parameter_status(out, "client_encoding", "UTF8");
  pr::append_parameter_status(out, "server_encoding", "UTF8");
  pr::append_parameter_status(out, "DateStyle", "ISO, MDY");
  pr::append_parameter_status(out, "integer_datetimes", "on");
  pr::append_parameter_status(out, "standard_conforming_strings", "on");
  pr::append_backend_key_data(out, 0, 0);
  pr::append_ready_for_query(out, 'I');
  co_await client.write(out);
  spdlog::info("{} admin console session", label);
  for (;;) {
    const pr::Frame f = co_await client.read_tagged();
    out.clear();
    if (f.tag == pr::fe::kTerminate) co_return;
    if (f.tag == pr::fe::kQuery) {
      auto sql = pr::decode_query(f.body);
      if (!sql) throw ProtocolError("malformed Query message");
      const std::string cmd = normalize(*sql);
      const bool admin_only = !cmd.starts_with("SHOW") && !cmd.empty();
      if (admin_only && !config.is_admin(user)) {
        pr::append_error(out, {.severity = "ERROR",
                               .sqlstate = "42501",
                               .message = "only admin_users may run this command; stats_users "
                                          "may run SHOW"});
      } else if (cmd == "PAUSE" || cmd.starts_with("PAUSE ") || cmd == "RESUME" ||
                 cmd.starts_with("RESUME ")) {
        co_await pause_or_resume(rt, config, cmd, std::string(*sql), out);
      } else if (!control(rt, config, cmd, *sql, out)) {
        execute(rt, config, cmd, out);
      }
    } else if (f.tag == pr::fe::kSync) {
      pr::append_error(out,
                       {.severity = "ERROR",
                        .sqlstate = "08P01",
                        .message = "the admin console supports only the simple query protocol"});
    } else {
      continue;  // extended-protocol messages are answered at their Sync
    }
    pr::append_ready_for_query(out, 'I');
    co_await client.write(out);
  }
}

}  // namespace pgmux::pooler
