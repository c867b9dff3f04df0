// Raw protocol client.
#include "raw_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pgmux::it {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

RawClient::RawClient(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("connect to port " + std::to_string(port) + ": " + std::strerror(err));
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

RawClient::Status RawClient::read_some(std::string& out, milliseconds bound) {
  if (!pending_.empty()) {
    out += pending_;
    pending_.clear();
    return Status::data;
  }
  pollfd p{fd_, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(bound.count()));
  if (r == 0) return Status::timeout;
  if (r < 0) return Status::error;
  char buf[65536];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n == 0) return Status::closed;
  if (n < 0) return errno == ECONNRESET ? Status::closed : Status::error;
  out.append(buf, static_cast<std::size_t>(n));
  return Status::data;
}

RawClient::Status RawClient::read_message(Message& m, milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  std::string buf;
  buf.swap(pending_);
  for (;;) {
    if (buf.size() >= 5) {
      std::uint32_t len = 0;
      std::memcpy(&len, buf.data() + 1, 4);
      len = ntohl(len);
      if (len < 4 || len > (1U << 30)) {
        pending_ = std::move(buf);
        return Status::error;
      }
      if (buf.size() >= 1 + static_cast<std::size_t>(len)) {
        m.tag = buf[0];
        m.body = buf.substr(5, len - 4);
        pending_ = buf.substr(1 + len);
        return Status::data;
      }
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      pending_ = std::move(buf);
      return Status::timeout;
    }
    const Status st = read_some(buf, left);
    if (st != Status::data) {
      pending_ = std::move(buf);
      return st;
    }
  }
}

RawClient::Status RawClient::read_until_closed(std::string& out, milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status::timeout;
    const Status st = read_some(out, left);
    if (st != Status::data) return st;
  }
}

std::string be32(std::uint32_t v) {
  const std::uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}

std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string body = be32(196608);  // protocol 3.0
  for (const auto& [k, v] : params) {
    body += k;
    body.push_back('\0');
    body += v;
    body.push_back('\0');
  }
  body.push_back('\0');
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

std::string cancel_request_packet(std::int32_t pid, std::int32_t secret) {
  return be32(16) + be32(80877102) + be32(static_cast<std::uint32_t>(pid)) +
         be32(static_cast<std::uint32_t>(secret));
}

namespace {

std::string md5_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string password_message(const std::string& password) {
  return "p" + be32(static_cast<std::uint32_t>(password.size() + 5)) + password + '\0';
}

}  // namespace

RawLogin raw_login(std::uint16_t port, const std::string& user, const std::string& database,
                   const std::string& password, milliseconds bound, const std::string& query) {
  RawLogin out;
  RawClient raw(port);
  if (!raw.send(startup_packet({{"user", user}, {"database", database}}))) {
    out.message = "cannot send the startup packet";
    return out;
  }
  const auto deadline = Clock::now() + bound;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    RawClient::Message m;
    const auto st = raw.read_message(m, std::max(left, milliseconds(1)));
    if (st != RawClient::Status::data) {
      out.message = st == RawClient::Status::timeout ? "timed out" : "connection closed";
      return out;
    }
    if (m.tag == 'E') {
      out.sqlstate = error_field(m.body, 'C');
      out.message = error_field(m.body, 'M');
      return out;
    }
    if (m.tag == 'Z') {
      if (out.ready || query.empty()) {
        out.query_done = out.ready;
        out.ready = true;
        return out;
      }
      out.ready = true;
      std::string q = "Q" + be32(static_cast<std::uint32_t>(4 + query.size() + 1)) + query;
      q.push_back('\0');
      if (!raw.send(q)) {
        out.message = "connection closed before the query";
        return out;
      }
      continue;
    }
    if (m.tag != 'R' || m.body.size() < 4) continue;  // ParameterStatus, BackendKeyData, …
    std::uint32_t code = 0;
    std::memcpy(&code, m.body.data(), 4);
    code = ntohl(code);
    if (code == 3) {
      raw.send(password_message(password));
    } else if (code == 5 && m.body.size() >= 8) {
      const std::string inner = md5_hex(password + user);
      raw.send(password_message("md5" + md5_hex(inner + m.body.substr(4, 4))));
    } else if (code == 10) {
      out.asked_scram = true;
      out.message = "server asked for SASL";
      return out;
    } else if (code != 0) {
      out.message = "unsupported authentication request " + std::to_string(code);
      return out;
    }
  }
}

std::string error_field(std::string_view body, char code) {
  std::size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    const char field = body[i++];
    const auto end = body.find('\0', i);
    if (end == std::string_view::npos) break;
    if (field == code) return std::string(body.substr(i, end - i));
    i = end + 1;
  }
  return "";
}

}  // namespace pgmux::it
