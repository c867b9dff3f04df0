// /metrics rendering and the minimal HTTP/1.0 server around it.
#include "pooler/admin/metrics.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <map>
#include <sstream>

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

std::string target_name(int target) {
  return target < 0 ? std::string("primary") : "replica" + std::to_string(target);
}

}  // namespace

std::string render_metrics(Runtime& rt) {
  Writer w;
  const auto pools = rt.pools().all();
  std::vector<PoolStats> stats;
  stats.reserve(pools.size());
  for (const auto& p : pools) stats.push_back(p->stats());

  w.family("pgmux_client_connections", "gauge", "Client connections open now.");
  w.sample("pgmux_client_connections", "", rt.client_count());

  w.family("pgmux_clients", "gauge",
           "Logged-in clients by database, user and state (active: holds a server; waiting: "
           "queued for one; idle: between transactions).");
  {
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
  w.family("pgmux_servers", "gauge", "Server connections per pool and target, by state.");
  for (const auto& s : stats) {
    const std::string l = "database=\"" + esc(s.database) + "\",user=\"" + esc(s.user) +
                          "\",target=\"" + target_name(s.target) + "\"";
    w.sample("pgmux_servers", l + ",state=\"active\"", s.active);
    w.sample("pgmux_servers", l + ",state=\"idle\"", s.idle);
    w.sample("pgmux_servers", l + ",state=\"connecting\"", s.connecting);
  }
  w.family("pgmux_max_wait_seconds", "gauge", "Longest current wait for a server connection.");
  for (const auto& s : stats) {
    w.sample("pgmux_max_wait_seconds",
             "database=\"" + esc(s.database) + "\",user=\"" + esc(s.user) + "\",target=\"" +
                 target_name(s.target) + "\"",
             static_cast<double>(s.max_wait_us) / 1e6);
  }
  w.family("pgmux_pool_wait_timeouts_total", "counter",
           "Clients that gave up waiting for a server connection (53300).");
  for (const auto& s : stats) {
    w.sample("pgmux_pool_wait_timeouts_total",
             "database=\"" + esc(s.database) + "\",user=\"" + esc(s.user) + "\",target=\"" +
                 target_name(s.target) + "\"",
             s.total_timeouts);
  }

  const auto traffic = rt.traffic_by_database();
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
    for (const auto& [db, t] : traffic) w.sample(c.name, "database=\"" + esc(db) + "\"", c.get(t));
  }

  // Latency histograms per database (cumulative buckets, as the exposition format wants).
  auto histogram = [&](const char* name, const char* help, auto hist, auto sum) {
    w.family(name, "histogram", help);
    for (const auto& [db, t] : traffic) {
      const std::string l = "database=\"" + esc(db) + "\"";
      std::uint64_t cumulative = 0;
      const auto& buckets = hist(t);
      for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
        cumulative += buckets[i];
        const std::string le =
            i < kLatencyBoundsUs.size() ? fmt_seconds(kLatencyBoundsUs[i]) : std::string("+Inf");
        w.sample(std::string(name) + "_bucket", l + ",le=\"" + le + "\"", cumulative);
      }
      w.sample(std::string(name) + "_sum", l, static_cast<double>(sum(t)) / 1e6);
      w.sample(std::string(name) + "_count", l, cumulative);
    }
  };
  histogram(
      "pgmux_query_duration_seconds",
      "Time from a request to its last ReadyForQuery, as the client sees it through pgmux.",
      [](const TrafficTotals& t) -> const auto& { return t.query_hist; },
      [](const TrafficTotals& t) { return t.query_time_us; });
  histogram(
      "pgmux_transaction_duration_seconds", "Time from a transaction's first request to its end.",
      [](const TrafficTotals& t) -> const auto& { return t.xact_hist; },
      [](const TrafficTotals& t) { return t.xact_time_us; });

  w.family("pgmux_prepared_statements_total", "counter",
           "Named prepared statements: client Parse and Bind messages, Binds whose statement "
           "the server already had (hit) and Parses pgmux sent to a server (miss).");
  for (const auto& [db, t] : traffic) {
    const std::string l = "database=\"" + esc(db) + "\",event=\"";
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
      w.sample("pgmux_pins_total", "database=\"" + esc(db) + "\",reason=\"" + kPinLabels[i] + "\"",
               t.pins[i]);
    }
    w.sample("pgmux_pins_total", "database=\"" + esc(db) + "\",reason=\"refused\"", t.pin_refusals);
  }
  w.family("pgmux_errors_total", "counter",
           "ErrorResponses sent to clients by SQLSTATE class: from servers per database, and "
           "the FATAL errors pgmux ended sessions with (database=\"\").");
  for (const auto& [db, t] : traffic) {
    for (std::size_t i = 0; i < kSqlstateClasses; ++i) {
      if (t.errors[i] == 0) continue;
      w.sample("pgmux_errors_total",
               "database=\"" + esc(db) + "\",class=\"" + std::string(kSqlstateClassCodes[i]) + "\"",
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

  const auto routings = rt.pools().routings();
  w.family("pgmux_routing_decisions_total", "counter", "Routing decisions by reason.");
  for (const auto& r : routings) {
    for (int k = 0; k < router::kReasonCount; ++k) {
      const auto reason = static_cast<router::Reason>(k);
      w.sample("pgmux_routing_decisions_total",
               "database=\"" + esc(r->name()) + "\",reason=\"" +
                   std::string(router::to_string(reason)) + "\"",
               r->decisions(reason));
    }
  }
  w.family("pgmux_replica_eligible", "gauge", "1 when the replica may serve reads now.");
  for (const auto& r : routings) {
    for (int i = 0; i < r->replica_count(); ++i) {
      w.sample("pgmux_replica_eligible",
               "database=\"" + esc(r->name()) + "\",replica=\"" + std::to_string(i) + "\"",
               r->eligible(i) ? 1 : 0);
    }
  }
  w.family("pgmux_replica_lag_bytes", "gauge", "WAL bytes the replica is behind (-1: unknown).");
  for (const auto& r : routings) {
    for (int i = 0; i < r->replica_count(); ++i) {
      w.sample("pgmux_replica_lag_bytes",
               "database=\"" + esc(r->name()) + "\",replica=\"" + std::to_string(i) + "\"",
               r->lag()->replica(i).lag_bytes.load());
    }
  }
  w.family("pgmux_replica_lag_seconds", "gauge", "Replay delay of the replica (-1: unknown).");
  for (const auto& r : routings) {
    for (int i = 0; i < r->replica_count(); ++i) {
      const auto ms = r->lag()->replica(i).lag_ms.load();
      w.sample("pgmux_replica_lag_seconds",
               "database=\"" + esc(r->name()) + "\",replica=\"" + std::to_string(i) + "\"",
               ms < 0 ? -1.0 : static_cast<double>(ms) / 1000.0);
    }
  }
  w.family("pgmux_replica_reads_total", "counter", "Leases a replica served for reads.");
  for (const auto& r : routings) {
    for (int i = 0; i < r->replica_count(); ++i) {
      w.sample("pgmux_replica_reads_total",
               "database=\"" + esc(r->name()) + "\",replica=\"" + std::to_string(i) + "\"",
               r->reads(i));
    }
  }
  return w.str();
}

MetricsServer::MetricsServer(asio::io_context& io, Runtime& rt) : io_(io), rt_(rt), acceptor_(io) {}

bool MetricsServer::start(const std::string& listen) {
  const auto colon = listen.rfind(':');
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(listen.substr(0, colon), ec);
  if (colon == std::string::npos || ec) {
    spdlog::error("metrics_listen \"{}\": expected host:port", listen);
    return false;
  }
  const tcp::endpoint ep(address, static_cast<std::uint16_t>(std::stoi(listen.substr(colon + 1))));
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) {
    spdlog::error("cannot serve metrics on {}: {}", listen, ec.message());
    return false;
  }
  spdlog::info("metrics on http://{}/metrics and /healthz", listen);
  asio::co_spawn(io_, accept_loop(),
                 [](std::exception_ptr e) { Runtime::log_exception("metrics", e); });
  return true;
}

void MetricsServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(as_result);
    if (ec) co_return;
    asio::co_spawn(io_, serve(std::move(socket)), [](std::exception_ptr) {});
  }
}

awaitable<bool> MetricsServer::primaries_reachable() {
  const auto cfg = rt_.config();
  for (const auto& [name, db] : cfg->databases) {
    tcp::socket s(io_);
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(db.primary.host, ec);
    if (ec) {
      // A host name: resolve it (bounded like the connect).
      tcp::resolver resolver(io_);
      auto [rec, results] = co_await resolver.async_resolve(
          db.primary.host, std::to_string(db.primary.port), as_result);
      if (rec || results.empty()) co_return false;
      try {
        co_await with_timeout(
            [&]() -> awaitable<void> { co_await asio::async_connect(s, results, use_awaitable); }(),
            Millis(1000));
      } catch (const std::exception&) {
        co_return false;
      }
      continue;
    }
    try {
      co_await with_timeout(s.async_connect(tcp::endpoint(address, db.primary.port), use_awaitable),
                            Millis(1000));
    } catch (const std::exception&) {
      co_return false;
    }
  }
  co_return true;
}

awaitable<void> MetricsServer::serve(tcp::socket socket) {
  std::string request;
  try {
    std::array<char, 1024> chunk{};
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      const std::size_t n = co_await with_timeout(
          socket.async_read_some(asio::buffer(chunk), use_awaitable), Millis(5000));
      request.append(chunk.data(), n);
    }
  } catch (const std::exception&) {
    co_return;
  }
  const auto line_end = request.find("\r\n");
  std::istringstream line(request.substr(0, line_end));
  std::string method, path;
  line >> method >> path;
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  if (method != "GET") {
    status = "405 Method Not Allowed";
    body = "GET only\n";
  } else if (path == "/metrics") {
    body = render_metrics(rt_);
  } else if (path == "/healthz") {
    if (!rt_.accepting()) {
      status = "503 Service Unavailable";
      body = "not accepting connections\n";
    } else if (!co_await primaries_reachable()) {
      status = "503 Service Unavailable";
      body = "a primary is unreachable\n";
    } else {
      body = "ok\n";
    }
  } else {
    status = "404 Not Found";
    body = "try /metrics or /healthz\n";
  }
  const std::string head = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\nConnection: close\r\n\r\n";
  const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(body)};
  co_await asio::async_write(socket, out, as_result);
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace pgmux::pooler
