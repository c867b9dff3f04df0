#include "pooler/net/tcp_keepalive.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pgmux::pooler {

namespace {

bool set_int(int fd, int level, int option, int value) {
  return ::setsockopt(fd, level, option, &value, sizeof value) == 0;
}

}  // namespace

bool apply_tcp_keepalive(int fd, const TcpKeepalive& k) {
  bool ok = true;
  if (k.idle_s > 0) {
    ok = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1) && ok;
    ok = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, k.idle_s) && ok;
    ok = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, k.interval_s) && ok;
    ok = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, k.count) && ok;
  }
  if (k.user_timeout_ms > 0)
    ok = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, k.user_timeout_ms) && ok;
  return ok;
}

}  // namespace pgmux::pooler
