// HAProxy (Debian's package) in TCP mode on loopback, round robin over pgmux instances: the
// load balancer of a fleet, started and stopped by the test that needs it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test_env.hpp"

namespace pgmux::it {

class Haproxy {
 public:
  // Starts /usr/sbin/haproxy in the foreground on a free port; waits (≤ 10 s) until it
  // accepts connections. Throws std::runtime_error with its output when it does not.
  Haproxy(TestEnv& env, const std::vector<std::uint16_t>& backends);
  ~Haproxy();
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  // A libpq connection string through the balancer (plain TCP, as pgbench and psql in CI).
  [[nodiscard]] std::string conninfo(const std::string& extra = "") const;

 private:
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string log_path_;
};

}  // namespace pgmux::it
