// /metrics and /healthz over HTTP, read with a plain socket and checked with a small parser of
// the Prometheus text format; the counters must agree with SHOW STATS.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "admin_stats.hpp"
#include "command.hpp"
#include "helpers.hpp"
#include "metrics_scrape.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("/metrics parses as Prometheus text and agrees with SHOW STATS; /healthz") {
  const std::uint16_t mport = pick_free_port();
  PgmuxProcess px(test_env(),
                  {.name = "metrics",
                   .mode = "transaction",
                   .pgmux_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(mport) + "\""});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (int i = 0; i < 25; ++i) c.run("SELECT 1");

  // The client has its last ReadyForQuery before pgmux has put the session and its server
  // away (the reply is forwarded first), so wait, bounded, for that to happen before comparing.
  const auto settled = [&] {
    const Exposition now = parse_exposition(http_get(mport, "/metrics").body);
    const auto turns = now.samples.find("pgmux_turn_states{state=\"lent\"}");
    const auto buffers = now.samples.find("pgmux_buffers{state=\"lent\"}");
    return turns != now.samples.end() && turns->second == 0 && buffers != now.samples.end() &&
           buffers->second == 0;
  };
  CHECK(wait_until(settled, std::chrono::seconds(5)));
  const HttpReply r = http_get(mport, "/metrics");
  REQUIRE(r.status == 200);
  const Exposition e = parse_exposition(r.body);
  CHECK_MESSAGE(e.errors.empty(), (e.errors.empty() ? "" : e.errors.front()));
  CHECK(e.types.at("pgmux_transactions_total") == "counter");
  CHECK(e.types.at("pgmux_servers") == "gauge");
  long long xacts = -1, queries = -1;
  for (const auto& row : console_rows(px, "SHOW STATS")) {
    if (row.at("database") != "app") continue;
    xacts = std::stoll(row.at("total_xact_count"));
    queries = std::stoll(row.at("total_query_count"));
  }
  CHECK(xacts >= 25);
  CHECK(e.samples.at("pgmux_transactions_total{database=\"app\"}") == static_cast<double>(xacts));
  CHECK(e.samples.at("pgmux_queries_total{database=\"app\"}") == static_cast<double>(queries));
  // Between transactions, the client holds no server.
  CHECK(e.samples.at("pgmux_clients{database=\"app\",user=\"app\",state=\"idle\"}") == 1);
  CHECK(e.samples.at("pgmux_clients{database=\"app\",user=\"app\",state=\"active\"}") == 0);
  CHECK(e.samples.at(
            "pgmux_servers{database=\"app\",user=\"app\",target=\"primary\",state=\"idle\"}") == 1);
  CHECK(e.samples.at("pgmux_client_connections") == 1);
  // The idle client and the idle pooled server hold no receive buffer; the block the last
  // transaction used is on the free list, and gauges agree with their byte counts.
  CHECK(e.types.at("pgmux_buffers") == "gauge");
  CHECK(e.samples.at("pgmux_buffers{state=\"lent\"}") == 0);
  CHECK(e.samples.at("pgmux_buffers{state=\"free\"}") >= 1);
  CHECK(e.samples.at("pgmux_buffers{state=\"other\"}") == 0);
  CHECK(e.samples.at("pgmux_buffer_bytes{state=\"free\"}") ==
        16384 * e.samples.at("pgmux_buffers{state=\"free\"}"));
  // Nor any active-session state: the block its transactions used went back to the free list.
  CHECK(e.types.at("pgmux_turn_states") == "gauge");
  CHECK(e.samples.at("pgmux_turn_states{state=\"lent\"}") == 0);
  CHECK(e.samples.at("pgmux_turn_states{state=\"free\"}") == 1);

  const HttpReply health = http_get(mport, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(http_get(mport, "/nope").status == 404);
}

TEST_CASE(
    "/metrics: latency histograms, errors by class, auth failures, prepared statements, pins") {
  const std::uint16_t mport = pick_free_port();
  PgmuxProcess px(test_env(),
                  {.name = "metrics2",
                   .pool_size = 1,
                   .mode = "transaction",
                   .pgmux_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(mport) + "\""});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (int i = 0; i < 10; ++i) c.run("SELECT 1");
  CHECK(c.exec("SELECT 1/0").sqlstate() == "22012");
  CHECK(c.exec("SELECT * FROM no_such_table").sqlstate() == "42P01");
  CHECK(c.exec("SELECT * FROM no_such_table_either").sqlstate() == "42P01");
  // A named statement prepared once and executed three times on the pool's one server. pgmux
  // answers the Parse itself (no server is needed yet) and prepares the statement on the server
  // at the first execution: one miss, then two hits.
  REQUIRE(c.collect(PQsendPrepare(c.get(), "q", "SELECT $1::int + 1", 1, nullptr) == 1).ok());
  for (int i = 0; i < 3; ++i) {
    const char* v = "41";
    const PgResult r =
        c.collect(PQsendQueryPrepared(c.get(), "q", 1, &v, nullptr, nullptr, 0) == 1);
    REQUIRE_MESSAGE(r.ok(), r.describe());
    CHECK(r.value(0, 0) == "42");
  }
  // Unnamed extended-protocol statements (what most drivers send) are timed from their own
  // start: their Parse answer is queued ahead of the Sync.
  const auto started = Clock::now();
  {
    PgConn fresh(px.conninfo("app", "secret"));  // its first request is one of them
    REQUIRE(fresh.ok());
    for (int i = 0; i < 5; ++i) {
      CHECK(fresh.exec_params("SELECT $1::int", {"7"}).value(0, 0) == "7");
    }
  }
  // A pin, released again.
  c.run("LISTEN pgmux_metrics");
  c.run("UNLISTEN *");
  PgConn wrong(px.conninfo("app", "not-the-password"));
  CHECK_FALSE(wrong.ok());

  // The client has its last ReadyForQuery before pgmux has put the session and its server
  // away (the reply is forwarded first), so wait, bounded, for that to happen before comparing.
  const auto settled = [&] {
    const Exposition now = parse_exposition(http_get(mport, "/metrics").body);
    const auto turns = now.samples.find("pgmux_turn_states{state=\"lent\"}");
    const auto buffers = now.samples.find("pgmux_buffers{state=\"lent\"}");
    return turns != now.samples.end() && turns->second == 0 && buffers != now.samples.end() &&
           buffers->second == 0;
  };
  CHECK(wait_until(settled, std::chrono::seconds(5)));
  const HttpReply r = http_get(mport, "/metrics");
  REQUIRE(r.status == 200);
  const Exposition e = parse_exposition(r.body);
  CHECK_MESSAGE(e.errors.empty(), (e.errors.empty() ? "" : e.errors.front()));
  CHECK(e.types.at("pgmux_query_duration_seconds") == "histogram");
  CHECK(e.types.at("pgmux_transaction_duration_seconds") == "histogram");
  for (const std::string h :
       {"pgmux_query_duration_seconds", "pgmux_transaction_duration_seconds"}) {
    CAPTURE(h);
    const double count = e.samples.at(h + "_count{database=\"app\"}");
    CHECK(count >= 10);
    CHECK(e.samples.at(h + "_bucket{database=\"app\",le=\"+Inf\"}") == count);
    CHECK(e.samples.at(h + "_sum{database=\"app\"}") > 0);
    // Every request and transaction of this test ran in this process's lifetime.
    CHECK(e.samples.at(h + "_sum{database=\"app\"}") < seconds_since(started) + 5.0);
    // Cumulative: never decreasing, and these local queries take well under 10 s.
    double last = 0;
    for (const char* le : {"0.0001", "0.001", "0.01", "0.1", "1", "10"}) {
      const double v = e.samples.at(h + "_bucket{database=\"app\",le=\"" + le + "\"}");
      CHECK(v >= last);
      last = v;
    }
    CHECK(last == count);
  }
  CHECK(e.samples.at("pgmux_errors_total{database=\"app\",class=\"22\"}") == 1);
  CHECK(e.samples.at("pgmux_errors_total{database=\"app\",class=\"42\"}") == 2);
  CHECK(e.samples.at("pgmux_errors_total{database=\"\",class=\"28\"}") == 1);
  CHECK(e.samples.at("pgmux_auth_failures_total") == 1);
  CHECK(e.samples.at("pgmux_prepared_statements_total{database=\"app\",event=\"client_parse\"}") ==
        1);
  CHECK(e.samples.at("pgmux_prepared_statements_total{database=\"app\",event=\"bind\"}") == 3);
  CHECK(e.samples.at("pgmux_prepared_statements_total{database=\"app\",event=\"miss\"}") == 1);
  CHECK(e.samples.at("pgmux_prepared_statements_total{database=\"app\",event=\"hit\"}") == 2);
  CHECK(e.samples.at("pgmux_pins_total{database=\"app\",reason=\"listen\"}") == 1);
  CHECK(e.samples.at("pgmux_pins_total{database=\"app\",reason=\"temp_table\"}") == 0);

  // SHOW PREPARED and SHOW STATS tell the same story.
  const auto prepared = pool_row(px, "app", "app", "SHOW PREPARED");
  REQUIRE(prepared.has_value());
  CHECK(prepared->at("client_statements") == "1");
  CHECK(prepared->at("server_statements") == "1");
  CHECK(prepared->at("binds") == "3");
  CHECK(prepared->at("hits") == "2");
  CHECK(prepared->at("server_prepares") == "1");
  CHECK(prepared->at("hit_ratio") == "0.667");
  for (const auto& row : console_rows(px, "SHOW STATS")) {
    if (row.at("database") != "app") continue;
    CHECK(row.at("total_client_parse_count") == "1");
    CHECK(row.at("total_server_parse_count") == "1");
    CHECK(row.at("total_bind_count") == "3");
    CHECK(row.at("total_requests") == row.at("total_query_count"));
  }
  // SHOW CLIENTS and SHOW SERVERS count the statement too.
  for (const auto& row : console_rows(px, "SHOW CLIENTS")) {
    if (row.at("user") == "app") CHECK(row.at("prepared_statements") == "1");
  }
  for (const auto& row : console_rows(px, "SHOW SERVERS")) {
    if (row.at("user") == "app") CHECK(row.at("prepared_statements") == "1");
  }
}

TEST_CASE("Debian's prometheus-pgbouncer-exporter reads pgmux's console unchanged") {
  // The exporter runs as packaged: it connects to the "pgbouncer" database as a console user,
  // runs SHOW STATS/POOLS/DATABASES/LISTS and serves what it read on its own HTTP port.
  PgmuxProcess px(test_env(), {.name = "exporter", .mode = "transaction"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  for (int i = 0; i < 12; ++i) c.run("SELECT 1");
  long long queries = -1;
  for (const auto& row : console_rows(px, "SHOW STATS")) {
    if (row.at("database") == "app") queries = std::stoll(row.at("total_query_count"));
  }
  const std::string port = std::to_string(pick_free_port());
  const std::string script =
      "prometheus-pgbouncer-exporter --host 127.0.0.1 --port " + port +
      " --pgbouncer-host 127.0.0.1 --pgbouncer-port " + std::to_string(px.port()) +
      " --pgbouncer-user admin >exporter.log 2>&1 & exporter=$!\n"
      "for i in $(seq 100); do\n"
      "  if /usr/bin/python3 -c 'import sys, urllib.request; "
      "sys.stdout.write(urllib.request.urlopen(\"http://127.0.0.1:" +
      port +
      "/metrics\", timeout=5).read().decode())' 2>/dev/null; then break; fi\n"
      "  sleep 0.1\n"
      "done\n"
      "kill $exporter; wait $exporter 2>/dev/null; cat exporter.log >&2\n";
  const auto run = pgmux::it::run_command({.argv = {"sh", "-c", "cd \"$TMPDIR\" && " + script},
                                           .env = {"PGPASSWORD=adminpass", "TMPDIR=/tmp"},
                                           .timeout = std::chrono::milliseconds(30000)});
  INFO(run.describe());
  INFO(run.err);
  const Exposition e = parse_exposition(run.out);
  CHECK_MESSAGE(e.errors.empty(), (e.errors.empty() ? "" : e.errors.front()));
  REQUIRE(e.samples.contains("pgbouncer_requests_total{database=\"app\"}"));
  CHECK(e.samples.at("pgbouncer_requests_total{database=\"app\"}") == static_cast<double>(queries));
  CHECK(e.samples.at("pgbouncer_received_bytes_total{database=\"app\"}") > 0);
  CHECK(e.samples.at("pgbouncer_active_clients{database=\"app\",user=\"app\"}") == 1);
  CHECK(e.samples.at("pgbouncer_waiting_clients{database=\"app\",user=\"app\"}") == 0);
  CHECK(e.samples.at("pgbouncer_pool_size{database=\"app\"}") == 4);
  CHECK(e.samples.at("pgbouncer_databases") == 1);
  CHECK(e.samples.at("pgbouncer_pools") == 1);
  CHECK(e.samples.at("pgbouncer_used_clients") == 2);  // c and the exporter's console session
  CHECK(e.samples.at("pgbouncer_login_clients") == 0);
  CHECK(e.samples.at("pgbouncer_free_servers") == 1);
}

TEST_CASE("the columns PgBouncer 1.2x exporters read are present and numeric") {
  // What prometheus-community/pgbouncer_exporter and similar Go/Python exporters map by column
  // name: labels must be text, metrics must parse as numbers (they run SHOW … over libpq's
  // simple query protocol, as here).
  PgmuxProcess px(test_env(), {.name = "columns", .mode = "transaction"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE(c.ok());
  c.run("SELECT 1");
  const std::map<std::string, std::vector<std::string>> wanted = {
      {"SHOW STATS",
       {"total_server_assignment_count", "total_xact_count", "total_query_count", "total_received",
        "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
        "total_client_parse_count", "total_server_parse_count", "total_bind_count",
        "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time",
        "avg_query_time", "avg_wait_time", "total_requests"}},
      {"SHOW POOLS",
       {"cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active",
        "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
        "maxwait", "maxwait_us"}},
      {"SHOW DATABASES",
       {"pool_size", "min_pool_size", "reserve_pool", "max_connections", "current_connections",
        "paused", "disabled"}},
  };
  for (const auto& [command, columns] : wanted) {
    CAPTURE(command);
    const auto rows = console_rows(px, command);
    REQUIRE_FALSE(rows.empty());
    const auto& row = rows.front();
    CHECK_FALSE(row.at(command == "SHOW DATABASES" ? "name" : "database").empty());
    for (const auto& col : columns) {
      CAPTURE(col);
      REQUIRE(row.contains(col));
      std::size_t used = 0;
      CHECK_NOTHROW((void)std::stod(row.at(col), &used));
      CHECK(used == row.at(col).size());
    }
  }
  std::map<std::string, std::string> lists;
  for (const auto& row : console_rows(px, "SHOW LISTS")) lists[row.at("list")] = row.at("items");
  for (const char* item :
       {"databases", "users", "pools", "free_clients", "used_clients", "login_clients",
        "free_servers", "used_servers", "dns_names", "dns_zones", "dns_queries", "dns_pending"}) {
    CAPTURE(item);
    CHECK(lists.contains(item));
  }
  CHECK(lists["used_clients"] == "2");  // c and the console session asking
  // Version probes match a dotted version number in SHOW VERSION.
  const auto version = console_rows(px, "SHOW VERSION");
  REQUIRE(version.size() == 1);
  CHECK(std::regex_search(version[0].at("version"), std::regex(R"(\d+\.\d+\.\d+)")));
}

TEST_CASE("secrets never appear in logs, the admin console's views or /metrics") {
  const std::string marker = "Sekr1t-Marker-7c1";  // a server password, plaintext
  const std::string client_secret = "Cl1ent-Pass-93a";
  const std::uint16_t mport = pick_free_port();
  PgmuxProcess px(test_env(),
                  {.name = "secrets",
                   .log_level = "debug",
                   .mode = "transaction",
                   .pgmux_toml = "metrics_listen = \"127.0.0.1:" + std::to_string(mport) + "\"",
                   .extra_toml = "[users.secretive]\npassword = \"" + client_secret +
                                 "\"\nserver_password = \"" + marker + "\"\n"});
  INFO(px.log_tail());
  // A good login, a failed one, and a server login with the server password (which the
  // server refuses: the role does not exist there, so pgmux's login attempt is logged).
  PgConn good(px.conninfo("app", "secret"));
  REQUIRE(good.ok());
  good.run("SELECT 1");
  PgConn bad(px.conninfo("app", marker));
  CHECK_FALSE(bad.ok());
  PgConn secretive(px.conninfo("secretive", client_secret));
  (void)first_failure(secretive);
  PgConn admin(px.conninfo("admin", "adminpass", "pgmux"));
  REQUIRE(admin.ok());
  std::string shown;
  for (const char* view : {"SHOW CONFIG", "SHOW USERS", "SHOW CLIENTS", "SHOW SERVERS",
                           "SHOW POOLS", "SHOW DATABASES", "SHOW STATS", "SHOW MEM"}) {
    const PgResult r = admin.exec(view);
    CHECK_MESSAGE(r.ok(), view);
    for (int row = 0; row < r.rows(); ++row) {
      for (int col = 0; col < r.cols(); ++col) shown += r.value(row, col) + "\n";
    }
  }
  const HttpReply metrics = http_get(mport, "/metrics");
  REQUIRE(metrics.status == 200);
  for (const std::string& secret : {marker, client_secret, std::string("adminpass")}) {
    CAPTURE(secret);
    CHECK(shown.find(secret) == std::string::npos);
    CHECK(metrics.body.find(secret) == std::string::npos);
    CHECK(px.log().find(secret) == std::string::npos);
  }
  CHECK(shown.find("SCRAM-SHA-256$") == std::string::npos);
  CHECK(px.log().find("SCRAM-SHA-256$") == std::string::npos);
}
