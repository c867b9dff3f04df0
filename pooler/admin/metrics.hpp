// Prometheus metrics over HTTP ([pgmux] metrics_listen): /metrics in the text exposition
// format, /healthz for load balancers. Served from the main thread's loop; reading the
// numbers takes the pools' locks briefly and sums per-worker counters, never waiting on a
// worker.
#pragma once

#include <memory>
#include <string>

#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

class Runtime;

// The text exposition of everything pgmux counts, as of now.
[[nodiscard]] std::string render_metrics(Runtime& rt);

class MetricsServer {
 public:
  MetricsServer(asio::io_context& io, Runtime& rt);
  // Binds `listen` ("host:port"); false (and a log line) when it cannot.
  bool start(const std::string& listen, bool reuse_port);
  void stop();

 private:
  awaitable<void> accept_loop();
  awaitable<void> serve(tcp::socket socket);
  awaitable<bool> primaries_reachable();

  asio::io_context& io_;
  Runtime& rt_;
  tcp::acceptor acceptor_;
};

}  // namespace pgmux::pooler
