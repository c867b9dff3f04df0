// Cancel requests: a client's CancelRequest goes to the server its key names right now, over
// TLS when that database's server_tls_mode asks for it; refused ones are counted and logged.
// In a fleet, a key another instance issued goes to that instance, which checks it as its own.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "pooler/pool/server_connection.hpp"
#include "pooler/runtime.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

awaitable<void> Runtime::forward_cancel(const CancelKey& key, bool from_peer) {
  if (const std::optional<Endpoint> peer = from_peer ? std::nullopt : owning_peer(key)) {
    co_await forward_to_peer(*peer, key);
    co_return;
  }
  const auto lookup = cancels_.resolve(key);
  if (!lookup.target) {
    note_failed_cancel(key, lookup.miss);
    co_return;
  }
  const std::optional<Delivery> for_client = Delivery{.key = key, .lease = lookup.lease};
  co_await deliver_cancel(*lookup.target, for_client);
}

awaitable<void> Runtime::cancel_abandoned_server(CancelTarget target) {
  const std::optional<Delivery> no_client;
  co_await deliver_cancel(target, no_client);
}

awaitable<void> Runtime::deliver_cancel(const CancelTarget& target,
                                        const std::optional<Delivery>& for_client) {
  const auto cfg = config();
  const Endpoint& to = target.endpoint;
  // The cancel travels like the connection it cancels: TLS as its database's server_tls_mode.
  TlsMode tls_mode = TlsMode::disable;
  const TlsContext* tls = nullptr;
  for (const auto& [name, db] : cfg->databases) {
    const bool serves = (db.primary.host == to.host && db.primary.port == to.port) ||
                        std::any_of(db.replicas.begin(), db.replicas.end(), [&](const Endpoint& e) {
                          return e.host == to.host && e.port == to.port;
                        });
    if (serves) {
      tls_mode = db.server_tls.mode == TlsMode::allow ? TlsMode::prefer : db.server_tls.mode;
      tls = db.server_tls_context.get();
      break;
    }
  }
  try {
    const bool sent = co_await with_timeout(send_cancel(target, tls_mode, tls, for_client),
                                            Millis(cfg->pool.server_connect_timeout_ms));
    if (sent) {
      spdlog::info("cancel forwarded to backend pid {} at {}:{}", target.server_pid, to.host,
                   to.port);
    } else {
      spdlog::info(
          "cancel for key {} dropped: the client's transaction ended before it could "
          "be delivered",
          for_client->key.pid);
    }
  } catch (const std::exception& e) {
    spdlog::warn("cancel to {}:{} failed: {}", to.host, to.port, e.what());
  }
}

std::optional<Endpoint> Runtime::owning_peer(const CancelKey& key) const {
  const int own = cancels_.peer_id();
  if (own == 0) return std::nullopt;
  const int owner = CancelRegistry::peer_of(key.pid);
  if (owner == own) return std::nullopt;
  const auto cfg = config();
  const auto it = cfg->peers.find(owner);
  // A key naming no known peer is looked up here, and refused as a key nobody holds.
  if (it == cfg->peers.end()) return std::nullopt;
  return it->second;
}

awaitable<bool> Runtime::send_to_peer(const Endpoint& peer, const CancelKey& key) {
  // The client's key in plain TCP, as libpq sends it, under pgmux's own request code: the peer
  // runs its own checks (secret, whether the client still holds the server it names) as for
  // a local cancel, and does not pass it on again.
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  Socket socket(executor);
  auto eps = co_await resolver.async_resolve(peer.host, std::to_string(peer.port), use_awaitable);
  co_await asio::async_connect(socket, eps, use_awaitable);
  std::string msg;
  protocol::append_cancel_request(msg, key.pid, key.secret, protocol::kPeerCancelRequestCode);
  co_await asio::async_write(socket, asio::buffer(msg), use_awaitable);
  char byte;  // the peer closes the connection once it has passed the request on
  co_await socket.async_read_some(asio::buffer(&byte, 1), as_result);
  co_return true;
}

awaitable<void> Runtime::forward_to_peer(const Endpoint& peer, const CancelKey& key) {
  try {
    co_await with_timeout(send_to_peer(peer, key),
                          Millis(config()->pool.server_connect_timeout_ms));
    const std::uint64_t n = peer_cancels_.fetch_add(1, std::memory_order_relaxed) + 1;
    spdlog::info("cancel for key {} forwarded to peer {} at {}:{} ({} since start)", key.pid,
                 CancelRegistry::peer_of(key.pid), peer.host, peer.port, n);
  } catch (const std::exception& e) {
    spdlog::warn("cancel for key {} to peer {} at {}:{} failed: {}", key.pid,
                 CancelRegistry::peer_of(key.pid), peer.host, peer.port, e.what());
  }
}

void Runtime::note_failed_cancel(const CancelKey& key, CancelRegistry::Miss miss) {
  if (miss == CancelRegistry::Miss::idle) {
    spdlog::debug("cancel request for idle client key {} dropped", key.pid);
    return;
  }
  // A wrong secret, or a key no client holds: a late cancel of a client that just left, or
  // someone guessing. Counted; logged at warning, at most five lines a second.
  const std::uint64_t n = failed_cancels_.fetch_add(1, std::memory_order_relaxed) + 1;
  {
    std::lock_guard lock(cancel_warning_mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - cancel_warning_window_ >= std::chrono::seconds(1)) {
      cancel_warning_window_ = now;
      cancel_warnings_in_window_ = 0;
    }
    if (++cancel_warnings_in_window_ > 5) return;
  }
  spdlog::warn("cancel request refused: {} for key {} ({} refused since start)",
               miss == CancelRegistry::Miss::wrong_secret ? "wrong secret" : "no such key", key.pid,
               n);
}

awaitable<bool> Runtime::send_cancel(const CancelTarget& target, TlsMode tls_mode,
                                     const TlsContext* tls,
                                     const std::optional<Delivery>& for_client) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  Socket socket(executor);
  auto eps = co_await resolver.async_resolve(target.endpoint.host,
                                             std::to_string(target.endpoint.port), use_awaitable);
  co_await asio::async_connect(socket, eps, use_awaitable);
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  Stream stream(std::move(socket));
  co_await negotiate_server_tls(stream, tls_mode, tls, target.endpoint);
  // The connection took time: the server may be serving another client by now.
  if (for_client && !cancels_.still_leased(for_client->key.pid, for_client->lease)) {
    stream.close();
    co_return false;
  }
  std::string msg;
  protocol::append_cancel_request(msg, target.server_pid, target.server_secret);
  co_await asio::async_write(stream, asio::buffer(msg), use_awaitable);
  // PostgreSQL closes the connection once it has processed the request.
  char byte;
  co_await stream.async_read_some(asio::buffer(&byte, 1), as_result);
  stream.close();
  co_return true;
}

}  // namespace pgmux::pooler
