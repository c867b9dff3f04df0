// The minimal HTTP/1.0 server for /metrics and /healthz; the rendering: metrics_render.cpp.
#include "pooler/admin/metrics.hpp"

#include <spdlog/spdlog.h>

#include <array>

#include "pooler/runtime.hpp"

namespace pgmux::pooler {

MetricsServer::MetricsServer(asio::io_context& io, Runtime& rt) : io_(io), rt_(rt), acceptor_(io) {}

bool MetricsServer::start(const std::string& listen, bool reuse_port) {
  const auto colon = listen.rfind(':');
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(listen.substr(0, colon), ec);
  if (colon == std::string::npos || ec) {
    spdlog::error("metrics_listen \"{}\": expected host:port", listen);
    return false;
  }
  const tcp::endpoint ep(address, static_cast<std::uint16_t>(std::stoi(listen.substr(colon + 1))));
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) acceptor_.set_option(ReusePort(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) {
    spdlog::error("cannot serve metrics on {}: {}", listen, ec.message());
    return false;
  }
  spdlog::info("metrics on http://{}/metrics and /healthz", listen);
  asio::co_spawn(io_, accept_loop(),
                 [](std::exception_ptr e) { Runtime::log_exception("metrics", e); });
  return true;
}

void MetricsServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(as_result);
    if (ec) co_return;
    asio::co_spawn(io_, serve(std::move(socket)), [](std::exception_ptr) {});
  }
}

awaitable<bool> MetricsServer::primaries_reachable() {
  const auto cfg = rt_.config();
  for (const auto& [name, db] : cfg->databases) {
    tcp::socket s(io_);
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(db.primary.host, ec);
    if (ec) {
      // A host name: resolve it (bounded like the connect).
      tcp::resolver resolver(io_);
      auto [rec, results] = co_await resolver.async_resolve(
          db.primary.host, std::to_string(db.primary.port), as_result);
      if (rec || results.empty()) co_return false;
      try {
        co_await with_timeout(
            [&]() -> awaitable<void> { co_await asio::async_connect(s, results, use_awaitable); }(),
            Millis(1000));
      } catch (const std::exception&) {
        co_return false;
      }
      continue;
    }
    try {
      co_await with_timeout(s.async_connect(tcp::endpoint(address, db.primary.port), use_awaitable),
                            Millis(1000));
    } catch (const std::exception&) {
      co_return false;
    }
  }
  co_return true;
}

awaitable<void> MetricsServer::serve(tcp::socket socket) {
  std::string request;
  try {
    std::array<char, 1024> chunk{};
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      const std::size_t n = co_await with_timeout(
          socket.async_read_some(asio::buffer(chunk), use_awaitable), Millis(5000));
      request.append(chunk.data(), n);
    }
  } catch (const std::exception&) {
    co_return;
  }
  const auto line_end = request.find("\r\n");
  std::istringstream line(request.substr(0, line_end));
  std::string method, path;
  line >> method >> path;
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  if (method != "GET") {
    status = "405 Method Not Allowed";
    body = "GET only\n";
  } else if (path == "/metrics") {
    body = render_metrics(rt_);
  } else if (path == "/healthz") {
    if (!rt_.accepting()) {
      status = "503 Service Unavailable";
      body = "not accepting connections\n";
    } else if (!co_await primaries_reachable()) {
      status = "503 Service Unavailable";
      body = "a primary is unreachable\n";
    } else {
      body = "ok\n";
    }
  } else {
    status = "404 Not Found";
    body = "try /metrics or /healthz\n";
  }
  const std::string head = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\nConnection: close\r\n\r\n";
  const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(body)};
  co_await asio::async_write(socket, out, as_result);
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace pgmux::pooler
