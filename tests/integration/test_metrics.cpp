// /metrics and /healthz over HTTP, read with a plain socket and checked with a small parser of
// the Prometheus text format; the counters must agree with SHOW STATS.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

struct HttpReply {
  int status = 0;
  std::string body;
};

// GET http://127.0.0.1:port/path (HTTP/1.0), bounded by a 5 s receive timeout.
HttpReply http_get(std::uint16_t port, const std::string& path) {
  HttpReply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return reply;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  reply.body = raw.substr(head_end + 4);
  return reply;
}

// A parsed exposition: sample ("name{labels}") → value, and the families declared.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family → counter/gauge
  std::vector<std::string> errors;
};

Exposition parse_exposition(const std::string& text) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$)");
  static const std::regex kType(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, m, kType)) {
      e.types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      e.errors.push_back(line);
      continue;
    }
    if (!e.types.contains(m[1])) e.errors.push_back("sample before its TYPE: " + line);
    e.samples[m[1].str() + (m[2].matched ? m[2].str() : "")] = std::stod(m[m.size() - 1]);
  }
  return e;
}

}  // namespace

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
  CHECK(e.samples.at("pgmux_clients{database=\"app\",user=\"app\",state=\"active\"}") == 1);
  CHECK(e.samples.at(
            "pgmux_servers{database=\"app\",user=\"app\",target=\"primary\",state=\"idle\"}") == 1);
  CHECK(e.samples.at("pgmux_client_connections") == 1);

  const HttpReply health = http_get(mport, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(http_get(mport, "/nope").status == 404);
}
