// What pgmux tells systemd (Type=notify), read off a datagram socket standing in for
// systemd's: ready once it listens, reloading and ready again around SIGHUP, watchdog pings
// while its workers run, stopping when SIGTERM starts the drain.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "pgmux_process.hpp"

using namespace pgmux::it;
using namespace std::chrono;

namespace {

// A bound AF_UNIX datagram socket, as systemd's NOTIFY_SOCKET is.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    ::unlink(path_.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  // Messages until one contains `text` (returned), or "" when `bound` runs out.
  std::string wait_for(const std::string& text, milliseconds bound) {
    const auto deadline = steady_clock::now() + bound;
    while (steady_clock::now() < deadline) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::string message(buf, static_cast<std::size_t>(n));
      seen.push_back(message);
      if (message.find(text) != std::string::npos) return message;
    }
    return "";
  }
  std::vector<std::string> seen;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("systemd: ready, reloading, watchdog pings and stopping on the notify socket") {
  TestEnv& env = test_env();
  NotifySocket sd(env.unique_stem("notify").string() + ".sock");
  PgmuxOptions o;
  o.name = "notify";
  // systemd's WatchdogSec=1 arrives as WATCHDOG_USEC; pgmux pings twice as often.
  o.env = {"NOTIFY_SOCKET=" + sd.path(), "WATCHDOG_USEC=400000"};
  PgmuxProcess px(env, o);
  INFO(px.log_tail());

  const std::string ready = sd.wait_for("READY=1", milliseconds(5000));
  CHECK(ready.find("STATUS=serving on 127.0.0.1:" + std::to_string(px.port())) !=
        std::string::npos);
  int pings = 0;
  const auto started = steady_clock::now();
  while (pings < 5 && steady_clock::now() - started < seconds(5)) {
    if (!sd.wait_for("WATCHDOG=1", milliseconds(1000)).empty()) ++pings;
  }
  CHECK(pings == 5);

  px.send_signal(SIGHUP);
  const std::string reloading = sd.wait_for("RELOADING=1", milliseconds(5000));
  CHECK(reloading.find("MONOTONIC_USEC=") != std::string::npos);
  CHECK(sd.wait_for("STATUS=configuration reloaded", milliseconds(5000)).find("READY=1") !=
        std::string::npos);

  px.send_signal(SIGTERM);
  CHECK_FALSE(sd.wait_for("STOPPING=1", milliseconds(5000)).empty());
  const auto status = px.wait_exit(milliseconds(10000));
  REQUIRE(status.has_value());
  CHECK(describe_wait_status(*status) == "exited with status 0");
  MESSAGE("notify socket: ", sd.seen.size(), " messages, ", pings, " watchdog pings checked");
}
