// /metrics read over HTTP with a plain socket, and a small parser of the Prometheus text
// format, for the tests that check what pgmux exports.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace pgmux::it {

struct HttpReply {
  int status = 0;
  std::string body;
};

// GET http://127.0.0.1:port/path (HTTP/1.0), bounded by a 5 s receive timeout.
inline HttpReply http_get(std::uint16_t port, const std::string& path) {
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

inline Exposition parse_exposition(const std::string& text) {
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
    // A histogram's samples are its family name + _bucket, _sum or _count.
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string base =
          family.ends_with(suffix) ? family.substr(0, family.size() - std::strlen(suffix)) : "";
      if (!base.empty() && e.types.contains(base) && e.types.at(base) == "histogram") {
        family = base;
      }
    }
    if (!e.types.contains(family)) e.errors.push_back("sample before its TYPE: " + line);
    e.samples[m[1].str() + (m[2].matched ? m[2].str() : "")] = std::stod(m[m.size() - 1]);
  }
  return e;
}

}  // namespace pgmux::it
