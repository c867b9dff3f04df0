// The keepalive and user-timeout options pgmux puts on client and server sockets, read back
// from the kernel.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pooler/config/config.hpp"
#include "pooler/net/tcp_keepalive.hpp"

using namespace pgmux::pooler;

namespace {

int get_int(int fd, int level, int option) {
  int value = -1;
  socklen_t len = sizeof value;
  REQUIRE(::getsockopt(fd, level, option, &value, &len) == 0);
  return value;
}

struct TcpSocket {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ~TcpSocket() { ::close(fd); }
};

}  // namespace

TEST_CASE("tcp keepalive: probes after idle_s, every interval_s, count of them; user timeout") {
  TcpSocket s;
  REQUIRE(s.fd >= 0);
  CHECK(apply_tcp_keepalive(s.fd,
                            {.idle_s = 20, .interval_s = 4, .count = 6, .user_timeout_ms = 12000}));
  CHECK(get_int(s.fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
  CHECK(get_int(s.fd, IPPROTO_TCP, TCP_KEEPIDLE) == 20);
  CHECK(get_int(s.fd, IPPROTO_TCP, TCP_KEEPINTVL) == 4);
  CHECK(get_int(s.fd, IPPROTO_TCP, TCP_KEEPCNT) == 6);
  CHECK(get_int(s.fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 12000);
}

TEST_CASE("tcp keepalive: idle 0 leaves keepalive off; user timeout 0 leaves the kernel's") {
  TcpSocket s;
  CHECK(apply_tcp_keepalive(s.fd, {.idle_s = 0, .user_timeout_ms = 0}));
  CHECK(get_int(s.fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
  CHECK(get_int(s.fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 0);
}

TEST_CASE("tcp keepalive: the defaults probe within half a minute; servers time out at 30 s") {
  const GeneralSettings g;
  CHECK(g.tcp_keepalive.idle_s == 15);
  CHECK(g.tcp_keepalive.idle_s + g.tcp_keepalive.interval_s * g.tcp_keepalive.count == 30);
  CHECK(g.server_tcp_user_timeout_ms == 30000);
  CHECK(g.tcp_keepalive.user_timeout_ms == 0);  // not on client sockets
}
