// Server connection lifecycle: connect, authenticate, track reported parameters, reset, close.
#include "pooler/pool/server_connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include <strings.h>

#include "protocol/md5.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  const int c = ::strncasecmp(a.data(), b.data(), std::min(a.size(), b.size()));
  return c != 0 ? c < 0 : a.size() < b.size();
}

void throw_server_error(std::string_view body) {
  auto fields = pr::decode_error_fields(body);
  if (!fields) throw ServerError("08P01", "server sent a malformed ErrorResponse");
  throw ServerError(std::string(fields->sqlstate), std::string(fields->message));
}

awaitable<void> negotiate_server_tls(Stream& stream, TlsMode mode, const TlsContext* ctx,
                                     const Endpoint& endpoint) {
  if (mode == TlsMode::disable || mode == TlsMode::allow || ctx == nullptr) co_return;
  const std::string where = endpoint.host + ":" + std::to_string(endpoint.port);
  std::string request;
  pr::append_ssl_request(request);
  co_await asio::async_write(stream.socket(), asio::buffer(request), use_awaitable);
  // Exactly one byte: anything the server sends after 'S' and before the handshake would be
  // unauthenticated plaintext taken for TLS data (CVE-2021-23222), so none is read.
  char answer = 0;
  co_await asio::async_read(stream.socket(), asio::buffer(&answer, 1), use_awaitable);
  if (answer == 'N') {
    if (mode == TlsMode::prefer) co_return;
    throw ServerError("08001", "server " + where +
                                   " does not support TLS, but server_tls_mode is \"" +
                                   to_string(mode) + "\"");
  }
  if (answer != 'S') {
    throw ServerError("08P01",
                      "server " + where + " answered the TLS request with neither S nor N");
  }
  try {
    co_await stream.tls_connect(ctx->get(), endpoint.host, mode == TlsMode::verify_full);
  } catch (const TlsError& e) {
    throw ServerError("08001", "TLS to server " + where + " failed: " + e.what());
  }
}

ServerConnection::ServerConnection(Socket socket, ServerLogin login, std::uint64_t id)
    : io_(std::move(socket), login.max_message_size), login_(std::move(login)), id_(id) {
  label_ = "S-" + std::to_string(id_) + " " + login_.user + "@" + login_.dbname + " " +
           login_.endpoint.host + ":" + std::to_string(login_.endpoint.port);
}

ServerConnection::~ServerConnection() {
  if (login_.registry != nullptr) login_.registry->remove(id_);
}

void ServerRegistry::add(std::uint64_t id, ServerConnection* c) {
  std::lock_guard lock(mutex_);
  live_[id] = c;
}

void ServerRegistry::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  live_.erase(id);
}

std::vector<ServerRow> ServerRegistry::snapshot() const {
  std::lock_guard lock(mutex_);  // a connection cannot be destroyed while this is held
  std::vector<ServerRow> out;
  out.reserve(live_.size());
  for (const auto& [id, c] : live_) {
    const ServerLogin& l = c->login();
    // The TLS names are OpenSSL's static strings, fixed at the handshake: safe to read here.
    const auto [version, cipher] = c->tls_names();
    out.push_back({id, l.user, l.database, l.endpoint.host, l.endpoint.port, c->backend_pid(),
                   c->connected_at(), c->close_needed(), c->statements().published_size(),
                   c->statements().published_bytes(),
                   version != nullptr ? std::string(version) + "/" + cipher : std::string()});
  }
  return out;
}

int ServerRegistry::mark_close_needed(const std::string& database, const Endpoint* only) {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& [id, c] : live_) {
    if (!database.empty() && c->login().database != database) continue;
    const Endpoint& e = c->login().endpoint;
    if (only != nullptr && (e.host != only->host || e.port != only->port)) continue;
    // The flag is the only field written from another thread: an atomic, on a connection
    // the lock keeps alive.
    c->mark_close_needed();
    ++n;
  }
  return n;
}

int ServerRegistry::count_close_needed(const std::string& database) const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& [id, c] : live_) {
    if ((database.empty() || c->login().database == database) && c->close_needed()) ++n;
  }
  return n;
}

awaitable<std::unique_ptr<ServerConnection>> ServerConnection::open(ServerLogin login,
                                                                    std::uint64_t id) {
  if (login.tls_mode != TlsMode::allow) co_return co_await connect_once(login, login.tls_mode, id);
  // allow (as libpq): plain text first, TLS only if the server turns that login away.
  try {
    co_return co_await connect_once(login, TlsMode::disable, id);
  } catch (const ServerError& e) {
    if (e.sqlstate() != "28000") throw;
  }
  co_return co_await connect_once(login, TlsMode::require, id);
}

awaitable<std::unique_ptr<ServerConnection>> ServerConnection::connect_once(
    const ServerLogin& login, TlsMode tls_mode, std::uint64_t id) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  Socket socket(executor);
  try {
    auto endpoints = co_await resolver.async_resolve(
        login.endpoint.host, std::to_string(login.endpoint.port), use_awaitable);
    co_await asio::async_connect(socket, endpoints, use_awaitable);
  } catch (const boost::system::system_error& e) {
    throw ServerError("08006", "could not connect to server " + login.endpoint.host + ":" +
                                   std::to_string(login.endpoint.port) + ": " + e.code().message());
  }
  socket.set_option(tcp::no_delay(true));
  apply_tcp_keepalive(socket.native_handle(), login.keepalive);
  auto conn = std::make_unique<ServerConnection>(std::move(socket), login, id);
  co_await negotiate_server_tls(conn->io_.stream(), tls_mode, conn->login_.tls.get(),
                                conn->login_.endpoint);
  conn->tls_names_ = conn->io_.stream().tls_names();
  pr::append_startup(conn->out_, {{"user", conn->login_.user}, {"database", conn->login_.dbname}});
  co_await conn->io_.write(conn->out_);
  conn->out_.clear();
  co_await conn->authenticate();
  co_await conn->read_until_ready();
  if (conn->login_.registry != nullptr) conn->login_.registry->add(conn->id_, conn.get());
  co_return conn;
}

awaitable<void> ServerConnection::read_until_ready() {
  std::optional<ServerError> error;
  for (;;) {
    const pr::Frame f = co_await io_.read_tagged();
    switch (f.tag) {
      case pr::be::kParameterStatus: {
        if (auto p = pr::decode_parameter_status(f.body)) record_parameter(p->name, p->value);
        break;
      }
      case pr::be::kBackendKeyData: {
        if (auto k = pr::decode_backend_key_data(f.body)) {
          backend_pid_ = k->pid;
          backend_secret_ = k->secret;
        }
        break;
      }
      case pr::be::kErrorResponse: {
        auto fields = pr::decode_error_fields(f.body);
        if (!error) {
          error.emplace(fields ? std::string(fields->sqlstate) : "08P01",
                        fields ? std::string(fields->message) : "malformed ErrorResponse");
        }
        break;
      }
      case pr::be::kReadyForQuery: {
        auto status = pr::decode_ready_for_query(f.body);
        if (!status) throw ServerError("08P01", "malformed ReadyForQuery from server");
        tx_status_ = *status;
        if (error) throw *error;
        co_return;
      }
      default:
        break;  // notices, command tags, rows of setup queries
    }
  }
}

awaitable<void> ServerConnection::simple_query(std::string_view sql) {
  out_.clear();
  pr::append_query(out_, sql);
  co_await io_.write(out_);
  co_await read_until_ready();
}

awaitable<std::vector<std::pair<std::string, std::string>>> ServerConnection::query_pairs(
    std::string_view sql) {
  out_.clear();
  pr::append_query(out_, sql);
  co_await io_.write(out_);
  std::vector<std::pair<std::string, std::string>> rows;
  std::optional<ServerError> error;
  for (;;) {
    const pr::Frame f = co_await io_.read_tagged();
    if (f.tag == pr::be::kDataRow) {
      // int16 column count, then per column int32 length (-1 = NULL) and bytes.
      std::string_view b = f.body;
      std::pair<std::string, std::string> row;
      if (b.size() < 2) throw ServerError("08P01", "malformed DataRow from server");
      const int cols = (static_cast<unsigned char>(b[0]) << 8) | static_cast<unsigned char>(b[1]);
      b.remove_prefix(2);
      for (int c = 0; c < cols && c < 2; ++c) {
        if (b.size() < 4) throw ServerError("08P01", "malformed DataRow from server");
        const std::int32_t len = static_cast<std::int32_t>(pr::read_be32(b.data()));
        b.remove_prefix(4);
        if (len < 0) continue;
        if (b.size() < static_cast<std::size_t>(len)) {
          throw ServerError("08P01", "malformed DataRow from server");
        }
        (c == 0 ? row.first : row.second).assign(b.substr(0, static_cast<std::size_t>(len)));
        b.remove_prefix(static_cast<std::size_t>(len));
      }
      rows.push_back(std::move(row));
    } else if (f.tag == pr::be::kParameterStatus) {
      if (auto p = pr::decode_parameter_status(f.body)) record_parameter(p->name, p->value);
    } else if (f.tag == pr::be::kErrorResponse) {
      auto fields = pr::decode_error_fields(f.body);
      if (!error) {
        error.emplace(fields ? std::string(fields->sqlstate) : "08P01",
                      fields ? std::string(fields->message) : "malformed ErrorResponse");
      }
    } else if (f.tag == pr::be::kReadyForQuery) {
      auto status = pr::decode_ready_for_query(f.body);
      if (!status) throw ServerError("08P01", "malformed ReadyForQuery from server");
      tx_status_ = *status;
      if (error) throw *error;
      co_return rows;
    }
  }
}

awaitable<void> ServerConnection::reset(std::string_view reset_query) {
  if (tx_status_ != 'I') co_await simple_query("ROLLBACK");
  if (!reset_query.empty()) co_await simple_query(reset_query);
  // DISCARD ALL (the default reset) drops settings and prepared statements; anything else
  // leaves pgmux unsure what remains, so both are forgotten and re-established on demand.
  applied_settings_.clear();
  statements_.clear();
  if (tx_status_ != 'I') throw ServerError("08P01", "server not idle after reset");
}

void ServerConnection::record_parameter(std::string_view name, std::string_view value) {
  auto it = params_.find(name);
  if (it == params_.end()) {
    params_.emplace(std::string(name), std::string(value));
    differences_base_.reset();
  } else if (it->second != value) {
    it->second.assign(value);
    differences_base_.reset();
  }
}

const ParameterMap& ServerConnection::parameters_differing_from(
    const std::shared_ptr<const ParameterMap>& base) {
  if (differences_base_ == base && base != nullptr) return differences_;
  differences_.clear();
  for (const auto& [name, value] : params_) {
    if (name == "in_hot_standby") continue;  // a standby's own business
    const auto in_base = base ? base->find(name) : ParameterMap::const_iterator{};
    if (!base || in_base == base->end() || in_base->second != value) {
      differences_.emplace_hint(differences_.end(), name, value);
    }
  }
  differences_base_ = base;
  return differences_;
}

void ServerConnection::rebind(asio::io_context& io) {
  auto& s = io_.socket();
  const auto protocol = s.local_endpoint().protocol();
  const auto fd = s.release();
  s = Socket(io, protocol, fd);
  io_.rebind_pool();
}

void ServerConnection::watch_while_idle() {
  if (watching_ || io_.stream().is_tls() || !io_.socket().is_open()) return;
  if (!idle_watch_) idle_watch_ = std::make_shared<IdleWatch>();
  IdleWatch& watch = *idle_watch_;
  const std::uint32_t generation = watch.generation.fetch_add(1) + 1;
  watch.spoke.store(false);
  watching_ = true;
  auto report = [watch = idle_watch_, generation](boost::system::error_code ec, std::size_t) {
    if (ec == asio::error::operation_aborted) return;
    if (watch->generation.load() == generation) watch->spoke.store(true);
  };
  io_.receive_drained(asio::buffer(watch.landing),
                      asio::bind_allocator(asio::recycling_allocator<void>(), std::move(report)));
}

bool ServerConnection::spoke_while_idle(bool peek) {
  if (std::exchange(watching_, false)) {
    boost::system::error_code ignored;
    io_.socket().cancel(ignored);  // (a move to another worker cancelled it already)
    return idle_watch_->spoke.load() || io_.stream().has_buffered_input();
  }
  if (io_.stream().has_buffered_input()) return true;
  if (!peek) return false;
  char c;
  // Over TLS a byte here is the start of a record: the server spoke all the same.
  const ssize_t n = ::recv(io_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

void ServerConnection::close() {
  if (!io_.socket().is_open()) return;
  boost::system::error_code ec;
  io_.socket().non_blocking(true, ec);
  static constexpr char kTerminate[] = {'X', 0, 0, 0, 4};
  io_.stream().write_some(asio::buffer(kTerminate, sizeof kTerminate), ec);
  io_.stream().close();
}

}  // namespace pgmux::pooler
