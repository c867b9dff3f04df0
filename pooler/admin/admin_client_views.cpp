// SHOW CLIENTS, SERVERS, PINNED, PREPARED and MEM, with PgBouncer's column names and order
// where the concept is the same and pgmux's own columns after.
#include "pooler/admin/admin_client_views.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "pooler/admin/admin_views.hpp"
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/turn_state.hpp"

namespace pgmux::pooler {

namespace {

// PgBouncer's columns of SHOW CLIENTS and SHOW SERVERS (1.21 order, then 1.23's id).
std::vector<std::string_view> socket_columns() {
  return {"type",
          "user",
          "database",
          "state",
          "addr",
          "port",
          "local_addr",
          "local_port",
          "connect_time",
          "request_time",
          "wait",
          "wait_us",
          "close_needed",
          "ptr",
          "link",
          "remote_pid",
          "tls",
          "application_name",
          "prepared_statements",
          "id"};
}

std::string utc_time(std::chrono::system_clock::time_point at) {
  const auto t = std::chrono::system_clock::to_time_t(at);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
  return when;
}

}  // namespace

// SHOW CLIENTS in PgBouncer's column order (state is active, waiting or idle here; what pgmux
// does not track is empty), then pgmux's own: pinned, server_phase.
void show_clients(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  for (const auto& c : rt.clients().snapshot()) {
    const ClientState st = c->state.load();
    const std::int64_t waited =
        st == ClientState::waiting ? now_us - c->waiting_since_us.load() : 0;
    const std::string when = utc_time(c->connected_at);
    rows.push_back({"C",
                    c->user(),
                    c->database(),
                    st == ClientState::active    ? "active"
                    : st == ClientState::waiting ? "waiting"
                                                 : "idle",
                    c->address,
                    std::to_string(c->port),
                    "",
                    "",
                    when,
                    when,
                    std::to_string(waited / 1000000),
                    std::to_string(waited % 1000000),
                    "0",
                    "",
                    "",
                    "",
                    c->tls_version != nullptr ? std::string(c->tls_version) + "/" + c->tls_cipher
                                              : std::string(),
                    c->application_name,
                    std::to_string(c->prepared_statements.load()),
                    std::to_string(c->id),
                    c->pinned.load(),
                    to_string(c->server_phase.load(std::memory_order_relaxed))});
  }
  std::vector<std::string_view> columns = socket_columns();
  columns.emplace_back("pinned");
  columns.emplace_back("server_phase");
  append_table(out, columns, rows);
}

// SHOW PINNED: clients held to their server by session-only state, and why.
void show_pinned(Runtime& rt, std::string& out) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : rt.clients().snapshot()) {
    const std::string why = c->pinned.load();
    if (why.empty()) continue;
    rows.push_back({std::to_string(c->id), c->user(), c->database(), c->address,
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
    const std::string when = utc_time(s.connected_at);
    rows.push_back({"S",
                    s.user,
                    s.database,
                    idle.contains(s.id) ? "idle" : "active",
                    s.host,
                    std::to_string(s.port),
                    "",
                    "",
                    when,
                    when,
                    "0",
                    "0",
                    s.close_needed ? "1" : "0",
                    "",
                    "",
                    std::to_string(s.backend_pid),
                    s.tls,
                    "",
                    std::to_string(s.prepared_statements),
                    std::to_string(s.id)});
  }
  append_table(out, socket_columns(), rows);
}

// SHOW PREPARED: per pool, the named statements its clients have defined now, the statements
// prepared on its server connections now, and what happened to clients' statements so far.
void show_prepared(Runtime& rt, std::string& out) {
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> now;  // clients, servers
  for (const auto& c : rt.clients().snapshot()) {
    now[{c->database(), c->user()}].first += c->prepared_statements.load();
  }
  for (const ServerRow& s : rt.pools().servers().snapshot()) {
    now[{s.database, s.user}].second += s.prepared_statements;
  }
  std::map<std::pair<std::string, std::string>, TrafficTotals> traffic;
  for (const auto& pool : rt.pools().all()) {
    traffic[{pool->database(), pool->user()}] += pool->traffic_totals();
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, t] : traffic) {
    const auto [clients, servers] = now[key];
    const std::uint64_t uses = t.prepared_hits + t.server_parse_count;
    char ratio[16];
    std::snprintf(
        ratio, sizeof ratio, "%.3f",
        uses > 0 ? static_cast<double>(t.prepared_hits) / static_cast<double>(uses) : 0.0);
    rows.push_back({key.first, key.second, std::to_string(clients), std::to_string(servers),
                    std::to_string(t.client_parse_count), std::to_string(t.bind_count),
                    std::to_string(t.prepared_hits), std::to_string(t.server_parse_count), ratio});
  }
  append_table(out,
               {"database", "user", "client_statements", "server_statements", "client_parses",
                "binds", "hits", "server_prepares", "hit_ratio"},
               rows);
}

// SHOW MEM: what pgmux holds, counted from its own structures (buffers from the workers'
// pools, as they are now), and the process's resident memory from the kernel.
void show_mem(Runtime& rt, const Config& config, std::string& out) {
  const auto clients = rt.clients().snapshot();
  const auto servers = rt.pools().servers().snapshot();
  long rss_kb = -1;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "VmRSS:", 6) == 0) rss_kb = std::strtol(line + 6, nullptr, 10);
    }
    std::fclose(f);
  }
  std::size_t statements = 0, statement_bytes = 0;
  for (const ServerRow& s : servers) {
    statements += static_cast<std::size_t>(s.prepared_statements);
    statement_bytes += static_cast<std::size_t>(s.prepared_bytes);
  }
  std::size_t client_statements = 0, client_statement_bytes = 0;
  for (const auto& c : clients) {
    client_statements += static_cast<std::size_t>(c->prepared_statements.load());
    client_statement_bytes += static_cast<std::size_t>(c->prepared_bytes.load());
  }
  const BufferStats b = rt.buffer_stats();
  const auto turns = rt.turn_state_stats();
  // What a logged-in client holds between requests in transaction mode (session mode: no
  // TransactionSession): its session objects and the SHOW CLIENTS entry; a dormant one holds
  // its carry in place of the transaction session.
  const std::size_t session_size =
      sizeof(ClientSession) + transaction_session_size() + sizeof(ClientInfo);
  const std::size_t dormant_size =
      sizeof(ClientSession) + ClientSession::dormant_size() + sizeof(ClientInfo);
  const std::size_t dormant = std::min(rt.dormant_clients(), clients.size());
  const std::size_t awake = clients.size() - dormant;
  const std::size_t block = BufferPool::kBlockSize;
  const std::size_t pool_size = sizeof(Pool) + config.worker_count() * sizeof(TrafficCounters);
  const std::size_t pools = rt.pools().all().size();
  auto n = [](std::size_t v) { return std::to_string(v); };
  append_table(out, {"name", "size", "used", "free", "memtotal"},
               {{"buffers", n(block), n(b.lent), n(b.free), n((b.lent + b.free) * block)},
                {"buffers_other", n(b.other == 0 ? 0 : b.other_bytes / b.other), n(b.other), "0",
                 n(b.other_bytes)},
                {"client_sessions", n(session_size), n(awake), "0", n(session_size * awake)},
                {"dormant_clients", n(dormant_size), n(dormant), "0", n(dormant_size * dormant)},
                {"turn_states", n(sizeof(TurnState)), n(turns.first), n(turns.second),
                 n(sizeof(TurnState) * (turns.first + turns.second))},
                {"server_connections", n(sizeof(ServerConnection)), n(servers.size()), "0",
                 n(sizeof(ServerConnection) * servers.size())},
                {"pools", n(pool_size), n(pools), "0", n(pools * pool_size)},
                {"client_statements",
                 n(client_statements == 0 ? 0 : client_statement_bytes / client_statements),
                 n(client_statements), "0", n(client_statement_bytes)},
                {"server_statements", n(statements == 0 ? 0 : statement_bytes / statements),
                 n(statements), "0", n(statement_bytes)},
                {"process_rss", "0", "0", "0", n(rss_kb < 0 ? 0 : rss_kb * 1024)}});
}

}  // namespace pgmux::pooler
