// Client session: startup → authentication → lease → relay → hand back, with every failure
// turned into one ErrorResponse for the client and one log line with the session's context.
#include "pooler/client_session.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "pooler/admin_console.hpp"
#include "pooler/relay.hpp"
#include "pooler/runtime.hpp"
#include "pooler/startup_params.hpp"
#include "pooler/transaction_pooling.hpp"
#include "protocol/md5.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

bool is_admin_database(std::string_view db) {
  return db == "pgmux" || db == "pgbouncer";
}

class ClientSession {
 public:
  ClientSession(Runtime& rt, Worker& worker, tcp::socket socket)
      : rt_(rt),
        worker_(worker),
        config_(rt.config()),
        id_(rt.next_client_id()),
        client_(std::move(socket), config_->general.max_message_size_bytes) {
    boost::system::error_code ec;
    auto peer = client_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port());
    label_ = "C-" + std::to_string(id_) + " " + peer_;
  }

  awaitable<void> run();

 private:
  awaitable<bool> read_startup();
  awaitable<void> authenticate(const UserConfig& user);
  awaitable<void> authenticate_scram(const UserConfig& user);
  awaitable<void> authenticate_md5(const UserConfig& user);
  awaitable<pr::Frame> read_password_message();
  awaitable<void> serve_database(const DatabaseConfig& db, const UserConfig& user);
  awaitable<ServerLease> lease_server(Pool& pool);
  std::shared_ptr<ClientInfo> info_;  // SHOW CLIENTS entry while logged in to a database
  awaitable<void> apply_settings(ServerLease& lease, const ParamList& settings,
                                 const ReportedParameters& announced);
  awaitable<void> finish_session(ServerLease& lease, RelayEnd end, RelayState& st);
  awaitable<void> send_error(std::string_view severity, std::string_view sqlstate,
                             std::string_view message);
  [[noreturn]] void fail_auth() const {
    throw SessionError("28P01", "password authentication failed for user \"" + user_ + "\"");
  }

  Runtime& rt_;
  Worker& worker_;
  std::shared_ptr<const Config> config_;
  std::uint64_t id_;
  FramedSocket client_;
  std::string peer_, label_;
  std::string user_, database_;
  ParamList startup_;
  CancelKey cancel_key_{};
  std::string out_;
};

awaitable<void> ClientSession::run() {
  const bool admitted = rt_.admit_client();
  std::pair<std::string, std::string> farewell;  // SQLSTATE and message of a fatal error
  try {
    const Millis login_timeout(config_->general.client_login_timeout_ms);
    if (!co_await with_timeout(read_startup(), login_timeout)) {
      if (admitted) rt_.release_client();
      co_return;
    }
    if (!admitted) {
      throw SessionError("53300", "too many client connections: max_client_conn (" +
                                      std::to_string(config_->pool.max_client_conn) + ") reached");
    }
    const UserConfig* user = config_->find_user(user_);
    if (user == nullptr) fail_auth();
    co_await with_timeout(authenticate(*user), login_timeout);
    if (is_admin_database(database_)) {
      co_await run_admin_console(rt_, client_, *config_, user_, label_);
    } else {
      const DatabaseConfig* db = config_->find_database(database_);
      if (db == nullptr) {
        throw SessionError("3D000", "database \"" + database_ + "\" does not exist in pgmux");
      }
      co_await serve_database(*db, *user);
    }
  } catch (const SessionError& e) {
    spdlog::log(e.sqlstate() == "28P01" ? spdlog::level::warn : spdlog::level::info,
                "{} closing: {} ({})", label_, e.what(), e.sqlstate());
    farewell = {e.sqlstate(), e.what()};
  } catch (const TimeoutError&) {
    spdlog::info("{} closing: login timed out (client_login_timeout_ms)", label_);
    farewell = {"08006", "pgmux: client login timed out"};
  } catch (const ProtocolError& e) {
    spdlog::info("{} closing: protocol violation: {}", label_, e.what());
    farewell = {"08P01", std::string("protocol violation: ") + e.what()};
  } catch (const boost::system::system_error& e) {
    spdlog::debug("{} closing: {}", label_, e.code().message());
  }
  if (farewell.first.empty() && info_ && info_->farewell != nullptr) {
    farewell = {"57P01", info_->farewell};
  }
  if (!farewell.first.empty()) rt_.count_fatal(farewell.first);
  // Await is not allowed inside a handler, so the final error is sent here.
  if (!farewell.first.empty()) co_await send_error("FATAL", farewell.first, farewell.second);
  if (cancel_key_.pid != 0) rt_.cancels().unregister_client(cancel_key_.pid);
  if (admitted) rt_.release_client();
  boost::system::error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_both, ec);
  client_.socket().close(ec);
}

awaitable<void> ClientSession::send_error(std::string_view severity, std::string_view sqlstate,
                                          std::string_view message) {
  out_.clear();
  pr::append_error(out_, {.severity = severity, .sqlstate = sqlstate, .message = message});
  co_await asio::async_write(client_.socket(), asio::buffer(out_), as_result);
}

awaitable<bool> ClientSession::read_startup() {
  for (int negotiations = 0;; ++negotiations) {
    const pr::Frame f = co_await client_.read_untagged();
    auto packet = pr::decode_startup(f.body);
    if (!packet) throw ProtocolError("invalid startup packet layout");
    using Kind = pr::StartupPacket::Kind;
    if (packet->kind == Kind::cancel) {
      co_await rt_.forward_cancel({packet->cancel_pid, packet->cancel_secret});
      co_return false;
    }
    if (packet->kind == Kind::ssl_request || packet->kind == Kind::gssenc_request) {
      if (negotiations >= 2) throw ProtocolError("too many encryption requests");
      co_await client_.write("N");  // TLS and GSS encryption are not offered
      continue;
    }
    const int major = packet->version >> 16, minor = packet->version & 0xffff;
    if (major != 3) {
      throw SessionError("0A000", "unsupported frontend protocol " + std::to_string(major) + "." +
                                      std::to_string(minor) + ": pgmux supports 3.0");
    }
    std::vector<std::string_view> unknown_options;
    for (const auto& [k, v] : packet->params) {
      startup_.emplace_back(k, v);
      if (k.starts_with("_pq_.")) unknown_options.push_back(k);
    }
    if (minor > 0 || !unknown_options.empty()) {
      // Tell a newer client we speak 3.0 and none of its protocol extensions.
      out_.clear();
      pr::MessageWriter w(out_);
      w.begin(pr::be::kNegotiateProtocolVersion).int32(pr::kProtocolVersion3);
      w.int32(static_cast<std::int32_t>(unknown_options.size()));
      for (auto o : unknown_options) w.cstring(o);
      w.end();
      co_await client_.write(out_);
    }
    user_ = std::string(pr::find_param(*packet, "user"));
    database_ = std::string(pr::find_param(*packet, "database"));
    if (user_.empty())
      throw SessionError("28000", "no PostgreSQL user name specified in startup packet");
    if (database_.empty()) database_ = user_;
    label_ = "C-" + std::to_string(id_) + " " + user_ + "@" + database_ + " " + peer_;
    co_return true;
  }
}

awaitable<pr::Frame> ClientSession::read_password_message() {
  const pr::Frame f = co_await client_.read_tagged(pr::kMaxAuthMessageBody);
  if (f.tag != pr::fe::kPassword) throw ProtocolError("expected a password message");
  co_return f;
}

awaitable<void> ClientSession::authenticate(const UserConfig& user) {
  switch (user.auth) {
    case AuthMethod::trust:
      break;
    case AuthMethod::md5:
      co_await authenticate_md5(user);
      break;
    case AuthMethod::scram_sha_256:
      co_await authenticate_scram(user);
      break;
  }
  out_.clear();
  pr::append_auth_ok(out_);
  co_await client_.write(out_);
}

awaitable<void> ClientSession::authenticate_scram(const UserConfig& user) {
  pr::ScramServer scram(*user.scram_secret);
  out_.clear();
  pr::append_auth_sasl(out_, "SCRAM-SHA-256");
  co_await client_.write(out_);
  pr::Frame f = co_await read_password_message();
  auto initial = pr::decode_sasl_initial_response(f.body);
  if (!initial) throw ProtocolError("malformed SASLInitialResponse");
  if (initial->mechanism != "SCRAM-SHA-256") {
    throw SessionError("28000", "client selected an invalid SASL authentication mechanism");
  }
  auto server_first = scram.handle_client_first(initial->data);
  if (!server_first) throw SessionError("08P01", "malformed SCRAM client-first-message");
  out_.clear();
  pr::append_auth_sasl_continue(out_, *server_first);
  co_await client_.write(out_);
  f = co_await read_password_message();
  auto server_final = scram.handle_client_final(f.body);
  if (!server_final) {
    if (server_final.error() == boost::system::errc::permission_denied) fail_auth();
    throw SessionError("08P01", "malformed SCRAM client-final-message");
  }
  out_.clear();
  pr::append_auth_sasl_final(out_, *server_final);
  co_await client_.write(out_);
}

awaitable<void> ClientSession::authenticate_md5(const UserConfig& user) {
  std::array<std::uint8_t, 4> salt{};
  RAND_bytes(salt.data(), static_cast<int>(salt.size()));
  out_.clear();
  pr::append_auth_md5(out_, salt);
  co_await client_.write(out_);
  const pr::Frame f = co_await read_password_message();
  auto given = pr::decode_password(f.body);
  const std::string expected = pr::md5_salted_response(user.md5_hash, salt);
  if (!given || given->size() != expected.size() ||
      CRYPTO_memcmp(given->data(), expected.data(), expected.size()) != 0) {
    fail_auth();
  }
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

awaitable<void> ClientSession::serve_database(const DatabaseConfig& db, const UserConfig& user) {
  StartupSettings wanted = collect_startup_settings(startup_);
  ParamList().swap(startup_);  // what is left of the startup packet is in `wanted`
  if (!wanted.error.empty()) throw SessionError("08P01", wanted.error);
  if (rt_.disabled(db.name)) {
    throw SessionError("57P03", "database \"" + db.name +
                                    "\" is disabled (DISABLE in the admin "
                                    "console); ENABLE lets clients in again");
  }
  const PoolMode mode = Config::mode_for(db, user);
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
  info_->id = id_;
  info_->user = user.name;
  info_->database = db.name;
  info_->address = peer_.substr(0, peer_.rfind(':'));
  info_->port = static_cast<std::uint16_t>(std::atoi(peer_.substr(peer_.rfind(':') + 1).c_str()));
  for (const auto& [name, value] : wanted.settings) {
    if (name == "application_name") info_->application_name = value;
  }
  info_->kill = [ex = worker_.io.get_executor(), weak = std::weak_ptr<ClientInfo>(info_),
                 socket = &client_.socket()](const char* why, bool only_if_idle) {
    asio::post(ex, [weak, socket, why, only_if_idle] {
      // On the session's worker: the socket is still there while `alive` is set. Only the
      // receiving side is shut: the session's read ends as if the client had left, writes in
      // flight complete, and a client between requests can still be told why.
      if (auto info = weak.lock(); info && info->alive && !info->killed) {
        const ClientState state = info->state.load();
        if (only_if_idle && state != ClientState::idle) return;
        info->killed = true;
        if (state != ClientState::active) info->farewell = why;
        boost::system::error_code ec;
        socket->shutdown(tcp::socket::shutdown_receive, ec);
      }
    });
  };
  rt_.clients().add(info_);
  struct Leave {
    Runtime& rt;
    Pool& pool;
    ClientInfo& info;
    ~Leave() {
      info.alive = false;
      pool.client_left();
      rt.clients().remove(info.id);
    }
  } leave{rt_, *pool, *info_};

  // Finish the login without holding a server, as PostgreSQL would answer: the parameters a
  // fresh server of this pool reports, with the client's own settings applied. A client that
  // connects and leaves (health checks, pgbench -C) then never takes a server, and a client
  // program that opens connections one by one cannot deadlock against a small pool.
  std::shared_ptr<const ParameterMap> server_welcome = pool->welcome_parameters();
  if (!server_welcome) {
    ServerLease probe = co_await lease_server(*pool);  // first login of this pool
    server_welcome = std::make_shared<const ParameterMap>(probe->parameters());
    probe.give_back();
  }
  ReportedParameters welcome(std::move(server_welcome));
  for (const auto& [name, value] : wanted.settings) {
    if (welcome.find(name) != nullptr) welcome.set(name, value);
  }
  cancel_key_ = rt_.cancels().register_client();
  out_.clear();
  welcome.for_each([this](const std::string& name, const std::string& value) {
    pr::append_parameter_status(out_, name, value);
  });
  pr::append_backend_key_data(out_, cancel_key_.pid, cancel_key_.secret);
  pr::append_ready_for_query(out_, 'I');
  co_await client_.write(out_);

  client_.release_frame();
  if (mode != PoolMode::session) {
    // A named object, not a temporary in the co_await expression: GCC 12 destroys such
    // temporaries twice.
    TransactionSessionSetup setup{.rt = rt_,
                                  .worker = worker_,
                                  .config = *config_,
                                  .client = client_,
                                  .label = label_,
                                  .pool = pool,
                                  .cancel_key = cancel_key_,
                                  // Moved: this frame stays alive as long as the
                                  // session, and an idle client should hold one copy.
                                  .startup_settings = std::move(wanted.settings),
                                  .told_client = std::move(welcome),
                                  .statement_mode = mode == PoolMode::statement,
                                  .rules = Config::rules_for(db, user),
                                  .balancing = db.routing.load_balancing,
                                  .read_your_writes = db.routing.read_your_writes,
                                  .causal_wait = Millis(db.routing.causal_wait_ms),
                                  .on_no_replica_error = db.routing.on_no_replica_error,
                                  .info = info_.get()};
    if (db.target == router::Target::replica) {
      setup.rules.read_write_split = true;  // an alias for the replicas: reads go there
      setup.startup_settings.emplace_back("pgmux.target", "replica");
    }
    if (setup.rules.read_write_split && !db.replicas.empty()) {
      setup.routing = rt_.pools().routing(db);
      for (int i = 0; i < static_cast<int>(db.replicas.size()); ++i) {
        setup.replica_pools.push_back(rt_.pools().get(*config_, db, user, i));
      }
    }
    co_await serve_transaction_pooling(std::move(setup));
    co_return;
  }
  // Session pooling: the server is leased at the client's first message and kept until it
  // leaves.
  ByteBuffer& buf = client_.buffer();
  if (buf.size() == 0) {
    auto [ec, n] = co_await client_.read_some();
    if (ec) co_return;  // left without a request
  }
  static constexpr std::string_view kTerminate("X\0\0\0\4", 5);
  if (buf.unread() == kTerminate) co_return;
  if (info_->killed) throw SessionError("57P01", kAdminFarewell);  // before waiting for a server

  WaitingFor waiting(info_.get());
  ServerLease lease = co_await lease_server(*pool);
  waiting.got_server();
  if (info_->killed) {
    lease.give_back();  // killed while it waited: nothing was sent on this server
    throw SessionError("57P01", kAdminFarewell);
  }
  rt_.cancels().set_target(
      cancel_key_.pid,
      CancelTarget{lease->login().endpoint, lease->backend_pid(), lease->backend_secret()});
  spdlog::debug("{} got server {}", label_, lease->label());
  co_await apply_settings(lease, wanted.settings, welcome);

  RelayState st;
  st.meter = TrafficMeter(&pool->traffic(worker_.index));
  const RelayEnd end = co_await relay(client_, *lease, st);
  rt_.cancels().set_target(cancel_key_.pid, std::nullopt);
  co_await finish_session(lease, end, st);
}

awaitable<void> ClientSession::apply_settings(ServerLease& lease, const ParamList& settings,
                                              const ReportedParameters& announced) {
  const SetBatch batch = build_set_batch(settings, lease->parameters());
  if (!batch.error.empty()) throw SessionError("42602", batch.error);
  if (!batch.sql.empty()) {
    std::optional<ServerError> rejected;
    try {
      co_await lease->simple_query(batch.sql);
    } catch (const ServerError& e) {
      rejected = e;
    }
    if (rejected) {
      // The server rejected a startup setting, as PostgreSQL itself would at login. The
      // failed batch left the server idle, so it goes back after the usual reset.
      co_await lease->reset(config_->pool.server_reset_query);
      lease.give_back();
      throw SessionError(rejected->sqlstate(), rejected->what());
    }
  }
  // Where the server's view differs from what the client was told at login (a value the
  // server normalised, or a server that differs from the pool's first), tell the client now:
  // ParameterStatus may arrive at any time.
  out_.clear();
  for (const auto& [name, value] : lease->parameters()) {
    const std::string* told = announced.find(name);
    if (told == nullptr || *told != value) {
      pr::append_parameter_status(out_, name, value);
    }
  }
  if (!out_.empty()) co_await client_.write(out_);
}

awaitable<void> ClientSession::finish_session(ServerLease& lease, RelayEnd end, RelayState& st) {
  switch (end) {
    case RelayEnd::client_terminated:
    case RelayEnd::client_gone:
      if (!st.quiescent()) {
        spdlog::info("{} left with server {} busy: closing the server", label_, lease->label());
        lease.discard();
        co_return;
      }
      try {
        co_await with_timeout(lease->reset(config_->pool.server_reset_query),
                              Millis(config_->pool.server_connect_timeout_ms));
        lease.give_back();
      } catch (const std::exception& e) {
        spdlog::warn("{} reset failed ({}): closing the server", lease->label(), e.what());
        lease.discard();
      }
      co_return;
    case RelayEnd::client_violation:
      lease.discard();
      throw ProtocolError("invalid message frame from client");
    case RelayEnd::server_gone:
    case RelayEnd::server_violation:
      spdlog::warn("{} lost its server {}: {}", label_, lease->label(),
                   end == RelayEnd::server_gone ? "connection closed" : "invalid frame");
      lease.discard();
      throw SessionError("08006",
                         "server connection lost: the server closed the connection "
                         "unexpectedly or sent an invalid message");
  }
}

}  // namespace

awaitable<void> run_client_session(Runtime& runtime, Worker& worker, tcp::socket socket) {
  ClientSession session(runtime, worker, std::move(socket));
  co_await session.run();
}

}  // namespace pgmux::pooler
