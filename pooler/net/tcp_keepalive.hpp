// TCP keepalive and TCP_USER_TIMEOUT for client and server sockets, so the kernel notices a
// peer that vanished (a cut link, a dead host) even when nobody writes to it: an idle
// connection is probed after `idle_s` seconds, every `interval_s`, and dropped after `count`
// unanswered probes; on a server socket, data left unacknowledged for `user_timeout_ms`
// drops the connection too, which keepalive alone does not cover (it only probes idle links).
#pragma once

namespace pgmux::pooler {

struct TcpKeepalive {
  int idle_s = 15;  // 0: no keepalive
  int interval_s = 5;
  int count = 3;
  int user_timeout_ms = 0;  // 0: the kernel's retransmission limit (about 15 minutes)
};

// Sets the options on a connected TCP socket; false when the kernel refused one (the socket
// still works, with the kernel's defaults for what was refused).
bool apply_tcp_keepalive(int fd, const TcpKeepalive& k);

}  // namespace pgmux::pooler
