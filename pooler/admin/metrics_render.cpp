// /metrics: the text exposition of everything pgmux counts, one function per section.
#include <array>
#include <cstdio>
#include <map>
#include <sstream>

#include "pooler/admin/metrics.hpp"
#include "pooler/runtime.hpp"
#include "pooler/session/statement_effects.hpp"
#include "router/database_routing.hpp"
#include "router/route.hpp"

namespace pgmux::pooler {

namespace {

// Label values escaped as the exposition format wants (backslash, quote, newline).
std::string esc(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  template <class V>
  void sample(std::string_view name, std::string_view labels, V value) {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << value << '\n';
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

// PinReason values as label values.
constexpr std::array<const char*, kPinReasons> kPinLabels = {
    "none", "listen", "advisory_lock", "temp_table", "hold_cursor", "sql_prepare"};
static_assert(static_cast<std::size_t>(PinReason::sql_prepare) + 1 == kPinReasons);

// A bucket bound in seconds, without trailing zeros ("0.0001", "2.5", "10").
std::string fmt_seconds(std::uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(us) / 1e6);
  std::string s(buf);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string pool_labels(const PoolStats& s) {
  const std::string target =
      s.target < 0 ? std::string("primary") : "replica" + std::to_string(s.target);
  return "database=\"" + esc(s.database) + "\",user=\"" + esc(s.user) + "\",target=\"" + target +
         "\"";
}

std::string database_label(std::string_view db) {
  return "database=\"" + esc(db) + "\"";
}

using TrafficByDatabase = decltype(std::declval<Runtime&>().traffic_by_database());
using Routings = decltype(std::declval<Runtime&>().pools().routings());

void render_clients(Writer& w, Runtime& rt, const std::vector<PoolStats>& stats) {
  w.family("pgmux_client_connections", "gauge", "Client connections open now.");
  w.sample("pgmux_client_connections", "", rt.client_count());
  w.family("pgmux_clients", "gauge",
           "Logged-in clients by database, user and state (active: holds a server; waiting: "
           "queued for one; idle: between transactions).");
  std::map<std::pair<std::string, std::string>, std::array<int, 3>> by_state;
  for (const auto& s : stats) {
    if (s.target < 0) by_state[{s.database, s.user}];  // every pool, also with no client
  }
  for (const auto& c : rt.clients().snapshot()) {
    ++by_state[{c->database(), c->user()}][static_cast<std::size_t>(c->state.load())];
  }
  for (const auto& [key, n] : by_state) {
    const std::string l =
        "database=\"" + esc(key.first) + "\",user=\"" + esc(key.second) + "\",state=\"";
    w.sample("pgmux_clients", l + "idle\"", n[0]);
    w.sample("pgmux_clients", l + "waiting\"", n[1]);
    w.sample("pgmux_clients", l + "active\"", n[2]);
  }
}

void render_pools(Writer& w, const std::vector<PoolStats>& stats) {
  w.family("pgmux_servers", "gauge", "Server connections per pool and target, by state.");
  for (const auto& s : stats) {
    const std::string l = pool_labels(s);
    w.sample("pgmux_servers", l + ",state=\"active\"", s.active);
    w.sample("pgmux_servers", l + ",state=\"idle\"", s.idle);
    w.sample("pgmux_servers", l + ",state=\"connecting\"", s.connecting);
  }
  w.family("pgmux_max_wait_seconds", "gauge", "Longest current wait for a server connection.");
  for (const auto& s : stats) {
    w.sample("pgmux_max_wait_seconds", pool_labels(s), static_cast<double>(s.max_wait_us) / 1e6);
  }
  w.family("pgmux_pool_wait_timeouts_total", "counter",
           "Clients that gave up waiting for a server connection (53300).");
  for (const auto& s : stats) {
    w.sample("pgmux_pool_wait_timeouts_total", pool_labels(s), s.total_timeouts);
  }
  w.family("pgmux_pool_server_moves_total", "counter",
           "Leases that moved a server connection to another worker's event loop.");
  for (const auto& s : stats) {
    w.sample("pgmux_pool_server_moves_total", pool_labels(s), s.total_moves);
  }
}

void render_traffic_counters(Writer& w, const TrafficByDatabase& traffic) {
  struct Counter {
    const char* name;
    const char* help;
    double (*get)(const TrafficTotals&);
  };
  const Counter counters[] = {
      {"pgmux_transactions_total", "Transactions completed (as SHOW STATS total_xact_count).",
       [](const TrafficTotals& t) { return static_cast<double>(t.xact_count); }},
      {"pgmux_queries_total", "Requests answered (as SHOW STATS total_query_count).",
       [](const TrafficTotals& t) { return static_cast<double>(t.query_count); }},
      {"pgmux_received_bytes_total", "Bytes received from clients.",
       [](const TrafficTotals& t) { return static_cast<double>(t.bytes_received); }},
      {"pgmux_sent_bytes_total", "Bytes sent to clients.",
       [](const TrafficTotals& t) { return static_cast<double>(t.bytes_sent); }},
      {"pgmux_transaction_seconds_total", "Time spent in transactions.",
       [](const TrafficTotals& t) { return static_cast<double>(t.xact_time_us) / 1e6; }},
      {"pgmux_query_seconds_total", "Time spent waiting for answers.",
       [](const TrafficTotals& t) { return static_cast<double>(t.query_time_us) / 1e6; }},
      {"pgmux_wait_seconds_total", "Time clients spent waiting for a server connection.",
       [](const TrafficTotals& t) { return static_cast<double>(t.wait_time_us) / 1e6; }},
  };
  for (const Counter& c : counters) {
    w.family(c.name, "counter", c.help);
    for (const auto& [db, t] : traffic) w.sample(c.name, database_label(db), c.get(t));
  }
}

// Latency histograms per database (cumulative buckets, as the exposition format wants).
void render_histogram(Writer& w, const TrafficByDatabase& traffic, const char* name,
                      const char* help,
                      const std::array<std::uint64_t, kLatencyBuckets> TrafficTotals::*hist,
                      std::uint64_t TrafficTotals::*sum_us) {
  w.family(name, "histogram", help);
  for (const auto& [db, t] : traffic) {
    const std::string l = database_label(db);
    std::uint64_t cumulative = 0;
    const auto& buckets = t.*hist;
    for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
      cumulative += buckets[i];
      const std::string le =
          i < kLatencyBoundsUs.size() ? fmt_seconds(kLatencyBoundsUs[i]) : std::string("+Inf");
      w.sample(std::string(name) + "_bucket", l + ",le=\"" + le + "\"", cumulative);
    }
    w.sample(std::string(name) + "_sum", l, static_cast<double>(t.*sum_us) / 1e6);
    w.sample(std::string(name) + "_count", l, cumulative);
  }
}

void render_statements(Writer& w, const TrafficByDatabase& traffic) {
  w.family("pgmux_prepared_statements_total", "counter",
           "Named prepared statements: client Parse and Bind messages, Binds whose statement "
           "the server already had (hit) and Parses pgmux sent to a server (miss).");
  for (const auto& [db, t] : traffic) {
    const std::string l = database_label(db) + ",event=\"";
    w.sample("pgmux_prepared_statements_total", l + "client_parse\"", t.client_parse_count);
    w.sample("pgmux_prepared_statements_total", l + "bind\"", t.bind_count);
    w.sample("pgmux_prepared_statements_total", l + "hit\"", t.prepared_hits);
    w.sample("pgmux_prepared_statements_total", l + "miss\"", t.server_parse_count);
  }
  w.family("pgmux_pins_total", "counter",
           "Transaction-pooled clients pinned to their server, by the session state that "
           "pinned them (refused: pin_session_state = \"error\" refused the statement).");
  for (const auto& [db, t] : traffic) {
    for (std::size_t i = 1; i < kPinReasons; ++i) {
      w.sample("pgmux_pins_total", database_label(db) + ",reason=\"" + kPinLabels[i] + "\"",
               t.pins[i]);
    }
    w.sample("pgmux_pins_total", database_label(db) + ",reason=\"refused\"", t.pin_refusals);
  }
}

void render_errors(Writer& w, Runtime& rt, const TrafficByDatabase& traffic) {
  w.family("pgmux_errors_total", "counter",
           "ErrorResponses sent to clients by SQLSTATE class: from servers per database, and "
           "the FATAL errors pgmux ended sessions with (database=\"\").");
  for (const auto& [db, t] : traffic) {
    for (std::size_t i = 0; i < kSqlstateClasses; ++i) {
      if (t.errors[i] == 0) continue;
      w.sample("pgmux_errors_total",
               database_label(db) + ",class=\"" + std::string(kSqlstateClassCodes[i]) + "\"",
               t.errors[i]);
    }
  }
  for (std::size_t i = 0; i < kSqlstateClasses; ++i) {
    if (const auto n = rt.fatal_errors(i); n > 0) {
      w.sample("pgmux_errors_total",
               "database=\"\",class=\"" + std::string(kSqlstateClassCodes[i]) + "\"", n);
    }
  }
  w.family("pgmux_auth_failures_total", "counter",
           "Client logins refused: wrong password, unknown user or not allowed (28P01, 28000).");
  w.sample("pgmux_auth_failures_total", "", rt.auth_failures());
  w.family("pgmux_cancel_refused_total", "counter",
           "Cancel requests refused: wrong secret or a key no client holds.");
  w.sample("pgmux_cancel_refused_total", "", rt.failed_cancels());
  w.family("pgmux_cancel_forwarded_to_peer_total", "counter",
           "Cancel requests passed on to the fleet instance ([peers]) whose key they carry.");
  w.sample("pgmux_cancel_forwarded_to_peer_total", "", rt.peer_cancels());
}

void render_memory(Writer& w, Runtime& rt) {
  const BufferStats buffers = rt.buffer_stats();
  w.family("pgmux_buffers", "gauge",
           "Receive buffers: standard blocks lent to sockets with unread bytes, on the workers' "
           "free lists, and other blocks (small login reads, frames held whole).");
  w.sample("pgmux_buffers", "state=\"lent\"", buffers.lent);
  w.sample("pgmux_buffers", "state=\"free\"", buffers.free);
  w.sample("pgmux_buffers", "state=\"other\"", buffers.other);
  w.family("pgmux_buffer_bytes", "gauge", "Bytes of the receive buffers, by the same states.");
  w.sample("pgmux_buffer_bytes", "state=\"lent\"", buffers.lent * BufferPool::kBlockSize);
  w.sample("pgmux_buffer_bytes", "state=\"free\"", buffers.free * BufferPool::kBlockSize);
  w.sample("pgmux_buffer_bytes", "state=\"other\"", buffers.other_bytes);

  const auto [turns_lent, turns_free] = rt.turn_state_stats();
  w.family("pgmux_turn_states", "gauge",
           "Active-session state blocks (expectation queue, gates, scratch): lent to clients "
           "that are active or hold a server, and on the workers' free lists.");
  w.sample("pgmux_turn_states", "state=\"lent\"", turns_lent);
  w.sample("pgmux_turn_states", "state=\"free\"", turns_free);

  w.family("pgmux_dormant_clients", "gauge", "Clients idle past client_dormant_after_ms.");
  w.sample("pgmux_dormant_clients", "", rt.dormant_clients());
}

// One sample per replica of every routed database: `value(routing, replica index)`.
template <class Value>
void render_per_replica(Writer& w, const Routings& routings, const char* name, const char* type,
                        const char* help, Value value) {
  w.family(name, type, help);
  for (const auto& r : routings) {
    for (int i = 0; i < r->replica_count(); ++i) {
      w.sample(name, database_label(r->name()) + ",replica=\"" + std::to_string(i) + "\"",
               value(*r, i));
    }
  }
}

void render_routing(Writer& w, const Routings& routings) {
  w.family("pgmux_routing_decisions_total", "counter", "Routing decisions by reason.");
  for (const auto& r : routings) {
    for (int k = 0; k < router::kReasonCount; ++k) {
      const auto reason = static_cast<router::Reason>(k);
      w.sample(
          "pgmux_routing_decisions_total",
          database_label(r->name()) + ",reason=\"" + std::string(router::to_string(reason)) + "\"",
          r->decisions(reason));
    }
  }
  using router::DatabaseRouting;
  render_per_replica(w, routings, "pgmux_replica_eligible", "gauge",
                     "1 when the replica may serve reads now.",
                     [](const DatabaseRouting& r, int i) { return r.eligible(i) ? 1 : 0; });
  render_per_replica(
      w, routings, "pgmux_replica_lag_bytes", "gauge",
      "WAL bytes the replica is behind (-1: unknown).",
      [](const DatabaseRouting& r, int i) { return r.lag()->replica(i).lag_bytes.load(); });
  render_per_replica(w, routings, "pgmux_replica_lag_seconds", "gauge",
                     "Replay delay of the replica (-1: unknown).",
                     [](const DatabaseRouting& r, int i) {
                       const auto ms = r.lag()->replica(i).lag_ms.load();
                       return ms < 0 ? -1.0 : static_cast<double>(ms) / 1000.0;
                     });
  render_per_replica(w, routings, "pgmux_replica_reads_total", "counter",
                     "Leases a replica served for reads.",
                     [](const DatabaseRouting& r, int i) { return r.reads(i); });
}

}  // namespace

std::string render_metrics(Runtime& rt) {
  Writer w;
  std::vector<PoolStats> stats;
  for (const auto& p : rt.pools().all()) stats.push_back(p->stats());
  render_clients(w, rt, stats);
  render_pools(w, stats);
  const auto traffic = rt.traffic_by_database();
  render_traffic_counters(w, traffic);
  render_histogram(
      w, traffic, "pgmux_query_duration_seconds",
      "Time from a request to its last ReadyForQuery, as the client sees it through pgmux.",
      &TrafficTotals::query_hist, &TrafficTotals::query_time_us);
  render_histogram(w, traffic, "pgmux_transaction_duration_seconds",
                   "Time from a transaction's first request to its end.", &TrafficTotals::xact_hist,
                   &TrafficTotals::xact_time_us);
  render_statements(w, traffic);
  render_errors(w, rt, traffic);
  render_memory(w, rt);
  render_routing(w, rt.pools().routings());
  return w.str();
}

}  // namespace pgmux::pooler
