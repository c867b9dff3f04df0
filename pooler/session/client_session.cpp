// Client session: turns, and everything after login: joining a pool, the welcome PostgreSQL
// sends after authentication, and serving the client in transaction or session pooling
// (parking and dormancy between turns: client_parking.cpp). Every failure becomes one ErrorResponse
// for the client and one log line with the session's context.
#include "pooler/session/client_session.hpp"

#include <array>

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

const std::string& ClientInfo::user() const {
  return pool->user();
}

const std::string& ClientInfo::database() const {
  return pool->database();
}

const char* to_string(ServerPhase phase) {
  switch (phase) {
    case ServerPhase::none:
      return "";
    case ServerPhase::held:
      return "held";
    case ServerPhase::request:
      return "request";
    case ServerPhase::copy:
      return "copy";
    case ServerPhase::own_queries:
      return "own_queries";
    case ServerPhase::wal_position:
      return "wal_position";
    case ServerPhase::retry_on_primary:
      return "retry_on_primary";
  }
  return "";
}

awaitable<void> run_client_session(Runtime& runtime, Worker& worker, Socket socket) {
  auto session = std::make_shared<ClientSession>(runtime, worker, std::move(socket));
  if (co_await session->turn(std::nullopt) == ClientTurn::wait_for_client) {
    ClientSession::park(std::move(session));
  }
}

ClientSession::ClientSession(Runtime& rt, Worker& worker, Socket socket)
    : rt_(rt),
      worker_(worker),
      config_(rt.config()),
      id_(rt.next_client_id()),
      client_(std::move(socket), config_->general.max_message_size_bytes) {
  boost::system::error_code ec;
  auto peer = client_.socket().remote_endpoint(ec);
  login_ = std::make_unique<LoginState>();
  login_->peer = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
  v6_ = !ec && peer.address().is_v6();
}

std::string ClientSession::label() const {
  if (info_) return fmt::format("{}", ClientLabel{info_.get()});
  if (!login_) return "C-" + std::to_string(id_);
  if (login_->user.empty()) return "C-" + std::to_string(id_) + " " + login_->peer;
  return "C-" + std::to_string(id_) + " " + login_->user + "@" + login_->database + " " +
         login_->peer;
}

ClientSession::~ClientSession() {
  close();
  worker_.dormant.unparked(*this);
}

void ClientSession::close() {
  leave();
  boost::system::error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_both, ec);
  client_.socket().close(ec);
}

void ClientSession::end_login() {
  if (!logging_in_) return;
  logging_in_ = false;
  rt_.login_ended();
}

void ClientSession::leave() {
  end_login();
  if (closed_) return;
  closed_ = true;
  transaction_.reset();  // its server goes back (or is discarded) before the client leaves
  if (info_) {
    info_->alive = false;
    info_->pool->client_left();
    rt_.clients().remove(*info_);
  }
  if (cancel_key_.pid != 0) rt_.cancels().unregister_client(cancel_key_.pid);
  if (admitted_) rt_.release_client();
}

awaitable<ClientTurn> ClientSession::turn(std::optional<boost::system::error_code> wake) {
  std::exception_ptr failure;
  try {
    const ClientTurn outcome = phase_ == Phase::login
                                   ? co_await login_and_serve()
                                   : co_await serve_transaction_pooling(*transaction_, wake);
    if (outcome == ClientTurn::wait_for_client) {
      client_.release_buffer();  // a parked client holds no buffer
      co_return outcome;
    }
  } catch (...) {
    failure = std::current_exception();
  }
  co_await end_session(failure);
  co_return ClientTurn::done;
}

awaitable<void> ClientSession::end_session(std::exception_ptr failure) {
  std::pair<std::string, std::string> farewell;  // SQLSTATE and message of a fatal error
  try {
    if (failure) std::rethrow_exception(failure);
  } catch (const SessionError& e) {
    spdlog::log(e.sqlstate() == "28P01" ? spdlog::level::warn : spdlog::level::info,
                "{} closing: {} ({})", label(), e.what(), e.sqlstate());
    farewell = {e.sqlstate(), e.what()};
  } catch (const TimeoutError&) {
    spdlog::info("{} closing: login timed out (client_login_timeout_ms)", label());
    farewell = {"08006", "pgmux: client login timed out"};
  } catch (const ProtocolError& e) {
    spdlog::info("{} closing: protocol violation: {}", label(), e.what());
    farewell = {"08P01", std::string("protocol violation: ") + e.what()};
  } catch (const boost::system::system_error& e) {
    spdlog::debug("{} closing: {}", label(), e.code().message());
  }
  if (farewell.first.empty() && info_ && info_->farewell != nullptr) {
    farewell = {"57P01", info_->farewell};
  }
  if (!farewell.first.empty()) {
    rt_.count_fatal(farewell.first);
    co_await send_error("FATAL", farewell.first, farewell.second);
    leave();  // the server, pool slot and client count are not held while draining
    co_await drain_before_close();
  }
  close();
}

// A client told of a fatal error may still be sending (a Query over the size limit, the rest
// of a pipeline). Closing a socket with unread input makes the kernel send a reset, and a
// reset can destroy the ErrorResponse in the client's receive queue before the client reads
// it, leaving "server closed the connection unexpectedly" instead of the SQLSTATE. A FIN
// does no better: libpq, still writing, reads the error and then the end of the stream and
// reports only the latter. So pgmux reads and discards what still comes until the client
// closes or goes quiet for a moment (it has sent everything and is reading the error), for
// at most a second: bounded in time, and in memory by the worker's one discard area (a flood
// of rejected connections costs no buffer each).
awaitable<void> ClientSession::drain_before_close() {
  constexpr Millis quiet_gap{100}, at_most{1000};
  const auto deadline = std::chrono::steady_clock::now() + at_most;
  client_.discard_input();
  auto& sink = worker_.discarded_input;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left <= Millis::zero()) co_return;
    auto read = client_.stream().async_read_some(asio::buffer(sink), use_awaitable);
    try {
      co_await with_timeout(std::move(read), std::min(quiet_gap, left));
    } catch (const TimeoutError&) {
      co_return;  // quiet: the client has read, or will read, the error
    } catch (const boost::system::system_error&) {
      co_return;  // closed or reset by the client
    }
  }
}

awaitable<void> ClientSession::send_error(std::string_view severity, std::string_view sqlstate,
                                          std::string_view message) {
  std::string out;
  pr::append_error(out, {.severity = severity, .sqlstate = sqlstate, .message = message});
  co_await asio::async_write(client_.stream(), asio::buffer(out), as_result);
}

awaitable<ServerLease> ClientSession::lease_server(Pool& pool) {
  try {
    co_return co_await pool.acquire(worker_.io, worker_.index,
                                    Millis(config_->pool.query_wait_timeout_ms));
  } catch (const PoolTimeout& e) {
    throw SessionError("53300", e.what());
  } catch (const ServerError& e) {
    throw SessionError(e.sqlstate(), e.what());
  }
}

awaitable<ClientTurn> ClientSession::serve_database(const DatabaseConfig& db,
                                                    const UserConfig& user) {
  StartupSettings wanted = collect_startup_settings(login_->startup);
  if (!wanted.error.empty()) throw SessionError(std::string(wanted.sqlstate), wanted.error);
  if (rt_.disabled(db.name)) {
    throw SessionError("57P03", "database \"" + db.name +
                                    "\" is disabled (DISABLE in the admin "
                                    "console); ENABLE lets clients in again");
  }
  const PoolMode mode = Config::mode_for(db, user);
  db_ = &db;
  user_ = &user;
  join_pool(db, user, mode, wanted);
  ReportedParameters told = co_await send_welcome(wanted.settings);
  login_.reset();  // what is left of the startup packet is in `wanted`
  client_.release_frame();
  start_pooling(db, user, mode, std::move(wanted.settings), std::move(told));
  co_return co_await serve_transaction_pooling(*transaction_, std::nullopt);
}

void ClientSession::join_pool(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                              StartupSettings& wanted) {
  std::shared_ptr<Pool> pool;
  if (db.target == router::Target::replica && mode == PoolMode::session) {
    // A read-only alias: the whole session on one replica, chosen by the balancer.
    auto routing = rt_.pools().routing(db);
    const std::vector<int> idle_counts(db.replicas.size(), 0);
    if (const std::optional<int> r = routing->pick(false, idle_counts, 0)) {
      pool = rt_.pools().get(*config_, db, user, *r);
      routing->count(router::Reason::session_pooling);
    } else {
      // No replica: the primary serves, but read-only, as a replica would.
      routing->count(router::Reason::no_replica);
      wanted.settings.emplace_back("default_transaction_read_only", "on");
    }
  }
  if (!pool) pool = rt_.pools().get(*config_, db, user);
  pool->client_joined();
  info_ = std::make_shared<ClientInfo>();
  info_->pool = std::move(pool);
  info_->id = id_;
  const std::string& peer = login_->peer;
  info_->address = peer.substr(0, peer.rfind(':'));
  info_->port = static_cast<std::uint16_t>(std::atoi(peer.substr(peer.rfind(':') + 1).c_str()));
  for (const auto& [name, value] : wanted.settings) {
    if (name == "application_name") info_->application_name = value;
  }
  info_->worker = &worker_;
  info_->session = this;
  std::tie(info_->tls_version, info_->tls_cipher) = client_.stream().tls_names();
  rt_.clients().add(*info_);
  end_login();
}

awaitable<ReportedParameters> ClientSession::send_welcome(const ParamList& settings) {
  // Finish the login without holding a server, as PostgreSQL would answer: the parameters a
  // fresh server of this pool reports, with the client's own settings applied. A client that
  // connects and leaves (health checks, pgbench -C) then never takes a server, and a client
  // program that opens connections one by one cannot deadlock against a small pool.
  std::shared_ptr<const ParameterMap> server_welcome = info_->pool->welcome_parameters();
  if (!server_welcome) {
    ServerLease probe = co_await lease_server(*info_->pool);  // first login of this pool
    server_welcome = std::make_shared<const ParameterMap>(probe->parameters());
    probe.give_back();
  }
  ReportedParameters welcome(std::move(server_welcome));
  for (const auto& [name, value] : settings) {
    if (welcome.find(name) != nullptr) welcome.set(name, value);
  }
  cancel_key_ = rt_.cancels().register_client(worker_.index);
  std::string out;
  welcome.for_each([&out](const std::string& name, const std::string& value) {
    pr::append_parameter_status(out, name, value);
  });
  pr::append_backend_key_data(out, cancel_key_.pid, cancel_key_.secret);
  pr::append_ready_for_query(out, 'I');
  co_await client_.write(out);
  co_return welcome;
}

void ClientSession::start_pooling(const DatabaseConfig& db, const UserConfig& user, PoolMode mode,
                                  ParamList settings, ReportedParameters told, IdleCarry* rest) {
  TransactionSessionSetup setup{.rt = rt_,
                                .worker = worker_,
                                .config = *config_,
                                .client = client_,
                                .owner = weak_from_this(),
                                .pool = info_->pool,
                                .cancel_key = cancel_key_,
                                .startup_settings = std::move(settings),
                                .told_client = std::move(told),
                                .statement_mode = mode == PoolMode::statement,
                                .session_pooling = mode == PoolMode::session,
                                .rules = Config::rules_for(db, user),
                                .balancing = db.routing.load_balancing,
                                .read_your_writes = db.routing.read_your_writes,
                                .causal_wait = Millis(db.routing.causal_wait_ms),
                                .replica_read_timeout = Millis(db.routing.replica_read_timeout_ms),
                                .on_no_replica_error = db.routing.on_no_replica_error,
                                .info = info_.get()};
  if (mode == PoolMode::session) {
    // The whole session on the server of info_->pool (a replica's, for a replica alias: see
    // join_pool()): nothing to route.
    setup.rules.read_write_split = false;
  } else if (db.target == router::Target::replica) {
    setup.rules.read_write_split = true;  // an alias for the replicas: reads go there
    setup.startup_settings.emplace_back("pgmux.target", "replica");
  }
  if (setup.rules.read_write_split && !db.replicas.empty()) {
    setup.routing = rt_.pools().routing(db);
    for (int i = 0; i < static_cast<int>(db.replicas.size()); ++i) {
      setup.replica_pools.push_back(rt_.pools().get(*config_, db, user, i));
    }
  }
  transaction_ = rest != nullptr ? make_transaction_session(std::move(setup), std::move(*rest))
                                 : make_transaction_session(std::move(setup));
  phase_ = Phase::serving;
}

}  // namespace pgmux::pooler
