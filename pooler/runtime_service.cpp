// The process as a service: the client listener (its address, SO_REUSEPORT for several
// processes on one port, and what the kernel must allow for one of them to stop without
// resetting connections), and the watchdog that tells systemd the workers still run.
#include <algorithm>
#include <fstream>

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"

namespace pgmux::pooler {

// With several processes on one port, a connection still in the accept queue of the one that
// stops is reset unless the kernel hands it to a sibling (Linux 5.14+).
void Runtime::warn_without_request_migration() {
  std::ifstream sysctl("/proc/sys/net/ipv4/tcp_migrate_req");
  int migrate = -1;
  if (sysctl >> migrate && migrate == 1) return;
  spdlog::warn(
      "so_reuseport: net.ipv4.tcp_migrate_req is {}: connections waiting in this process's "
      "accept queue when it stops will be reset; set it to 1 for rolling restarts "
      "(docs/deployment.md)",
      migrate < 0 ? "not available" : std::to_string(migrate));
}

bool Runtime::listen(const GeneralSettings& g) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(g.listen_addr, ec);
  if (ec) {
    spdlog::error("invalid listen_addr \"{}\": {}", g.listen_addr, ec.message());
    return false;
  }
  const tcp::endpoint endpoint(address, g.listen_port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && g.so_reuseport) acceptor_.set_option(ReusePort(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    spdlog::error("cannot listen on {}:{}: {}", g.listen_addr, g.listen_port, ec.message());
    return false;
  }
  if (g.so_reuseport) warn_without_request_migration();
  return true;
}

awaitable<void> Runtime::watchdog_loop(std::chrono::microseconds period) {
  // A ping says every worker ran a handler since the last one: a worker stuck in a loop or on
  // a lock stops the pings, and systemd restarts the process after WatchdogSec.
  Timer timer(main_io_);
  for (std::uint64_t tick = 0;; ++tick) {
    const bool all_answered = std::all_of(workers_.begin(), workers_.end(), [&](const auto& w) {
      return w->heartbeat.load(std::memory_order_relaxed) == tick;
    });
    if (all_answered) {
      service_.alive();
    } else {
      spdlog::warn(
          "watchdog: a worker has run no handler for {} ms: systemd is not told that "
          "pgmux is alive",
          std::chrono::duration_cast<Millis>(period).count());
    }
    for (auto& w : workers_) {
      asio::post(w->io, [&heartbeat = w->heartbeat, next = tick + 1] {
        heartbeat.store(next, std::memory_order_relaxed);
      });
    }
    timer.expires_after(period);
    if (auto [ec] = co_await timer.async_wait(as_result); ec) co_return;
  }
}

}  // namespace pgmux::pooler
