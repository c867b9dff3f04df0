// The client's login: the startup packet (with SSLRequest/GSSENCRequest and CancelRequest),
// protocol version negotiation, and authentication (SCRAM-SHA-256, md5, trust); then the
// client goes to the admin console or to its database.
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <spdlog/spdlog.h>

#include "pooler/admin/admin_console.hpp"
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "protocol/md5.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {
bool is_admin_database(std::string_view db) {
  return db == "pgmux" || db == "pgbouncer";
}
}  // namespace

void ClientSession::fail_auth() const {
  throw SessionError("28P01", "password authentication failed for user \"" + login_->user + "\"");
}

awaitable<ClientTurn> ClientSession::login_and_serve() {
  admitted_ = rt_.admit_client();
  const Millis login_timeout(config_->general.client_login_timeout_ms);
  if (!co_await with_timeout(read_startup(), login_timeout)) co_return ClientTurn::done;
  check_client_tls();
  if (!admitted_) {
    throw SessionError("53300", "too many client connections: max_client_conn (" +
                                    std::to_string(config_->pool.max_client_conn) + ") reached");
  }
  const AuthMethod method_by_hba = access_method();
  const UserConfig* user = config_->find_user(login_->user);
  if (user == nullptr) user = co_await with_timeout(look_up_user(), login_timeout);
  if (user == nullptr) {
    // As PostgreSQL: an unknown user goes through a SCRAM exchange against a made-up secret
    // and fails at the proof, exactly as a wrong password does; nothing tells it apart.
    co_await with_timeout(authenticate_unknown_user(), login_timeout);
    fail_auth();
  }
  co_await with_timeout(authenticate(*user, config_->hba ? method_by_hba : user->auth),
                        login_timeout);
  if (is_admin_database(login_->database)) {
    const std::string label = this->label();
    end_login();  // a console is not a client the drain waits for
    co_await run_admin_console(rt_, client_, *config_, login_->user, label);
    co_return ClientTurn::done;
  }
  const DatabaseConfig* db = config_->find_database(login_->database);
  if (db == nullptr) {
    throw SessionError("3D000", "database \"" + login_->database + "\" does not exist in pgmux");
  }
  co_return co_await serve_database(*db, *user);
}

awaitable<const UserConfig*> ClientSession::look_up_user() {
  const DatabaseConfig* db = config_->find_database(login_->database);
  if (config_->general.auth_user.empty() || db == nullptr) co_return nullptr;
  try {
    looked_up_user_ =
        co_await rt_.auth_queries().lookup(config_, *db, login_->user, worker_.io, worker_.index);
  } catch (const TimeoutError&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::warn("{} auth_query failed: {}", label(), e.what());
    throw SessionError(
        "08006", "pgmux could not run auth_query to authenticate user \"" + login_->user + "\"");
  }
  co_return looked_up_user_.get();
}

void ClientSession::check_client_tls() {
  const ClientTlsSettings& tls = config_->general.client_tls;
  if (tls.mode < TlsMode::require) return;
  if (!client_.stream().is_tls()) {
    throw SessionError("28000", "pgmux: TLS is required (client_tls_mode = \"" +
                                    std::string(to_string(tls.mode)) +
                                    "\"); connect with sslmode=require or stronger");
  }
  if (tls.mode == TlsMode::verify_full && client_.stream().peer_common_name() != login_->user) {
    throw SessionError("28000",
                       "certificate validation (client_tls_mode = \"verify-full\") failed "
                       "for user \"" +
                           login_->user + "\": CN mismatch");
  }
}

awaitable<bool> ClientSession::accept_tls() {
  const TlsContext* tls = config_->client_tls_context.get();
  try {
    co_await client_.stream().tls_accept(tls->get());
  } catch (const TlsError& e) {
    spdlog::info("{} closing: {}", label(), e.what());  // no error can reach it now
    co_return false;
  }
  co_return true;
}

awaitable<bool> ClientSession::starts_with_tls_hello() {
  auto [ec] = co_await client_.socket().async_wait(tcp::socket::wait_read, as_result);
  if (ec) co_return false;  // the read that follows reports it
  unsigned char first = 0;
  const ssize_t n = ::recv(client_.socket().native_handle(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
  co_return n == 1 && first == 0x16;  // a TLS handshake record; no startup packet starts so
}

awaitable<bool> ClientSession::read_startup() {
  if (config_->client_tls_context && co_await starts_with_tls_hello()) {
    // PostgreSQL 17's direct TLS: the handshake comes first, and must name "postgresql" in
    // ALPN, so that no other protocol's client is taken for one (as PostgreSQL requires).
    if (!co_await accept_tls()) co_return false;
    if (client_.stream().alpn_protocol() != "postgresql") {
      throw ProtocolError("direct TLS connection without ALPN protocol \"postgresql\"");
    }
  }
  for (int negotiations = 0;; ++negotiations) {
    const pr::Frame f = co_await client_.read_untagged();
    auto packet = pr::decode_startup(f.body);
    if (!packet) throw ProtocolError("invalid startup packet layout");
    using Kind = pr::StartupPacket::Kind;
    if (packet->kind == Kind::cancel || packet->kind == Kind::peer_cancel) {
      const bool from_peer = packet->kind == Kind::peer_cancel;
      co_await rt_.forward_cancel({packet->cancel_pid, packet->cancel_secret}, from_peer);
      co_return false;
    }
    if (packet->kind == Kind::ssl_request || packet->kind == Kind::gssenc_request) {
      if (negotiations >= 2) throw ProtocolError("too many encryption requests");
      const bool offer_tls = packet->kind == Kind::ssl_request && config_->client_tls_context &&
                             !client_.stream().is_tls();
      client_.release_frame();
      if (offer_tls && client_.buffer().size() > 0) {
        // Bytes sent before the handshake would pass as if they had come through TLS.
        throw ProtocolError("received unencrypted data after SSL request");
      }
      co_await client_.write(offer_tls ? "S" : "N");  // GSS encryption is not offered
      if (offer_tls && !co_await accept_tls()) co_return false;
      continue;
    }
    const int major = packet->version >> 16, minor = packet->version & 0xffff;
    if (major != 3) {
      throw SessionError("0A000", "unsupported frontend protocol " + std::to_string(major) + "." +
                                      std::to_string(minor) + ": pgmux supports 3.0");
    }
    std::vector<std::string_view> unknown_options;
    for (const auto& [k, v] : packet->params) {
      login_->startup.emplace_back(k, v);
      if (k.starts_with("_pq_.")) unknown_options.push_back(k);
    }
    if (minor > 0 || !unknown_options.empty()) {
      // Tell a newer client we speak 3.0 and none of its protocol extensions.
      std::string out;
      pr::MessageWriter w(out);
      w.begin(pr::be::kNegotiateProtocolVersion).int32(pr::kProtocolVersion3);
      w.int32(static_cast<std::int32_t>(unknown_options.size()));
      for (auto o : unknown_options) w.cstring(o);
      w.end();
      co_await client_.write(out);
    }
    LoginState& login = *login_;
    login.user = std::string(pr::find_param(*packet, "user"));
    login.database = std::string(pr::find_param(*packet, "database"));
    if (login.user.empty())
      throw SessionError("28000", "no PostgreSQL user name specified in startup packet");
    if (login.database.empty()) login.database = login.user;
    co_return true;
  }
}

awaitable<pr::Frame> ClientSession::read_password_message() {
  const pr::Frame f = co_await client_.read_tagged(pr::kMaxAuthMessageBody);
  if (f.tag != pr::fe::kPassword) throw ProtocolError("expected a password message");
  co_return f;
}

AuthMethod ClientSession::access_method() {
  if (!config_->hba) return AuthMethod::scram_sha_256;  // unused: the user's auth decides
  boost::system::error_code ec;
  const auto peer = client_.socket().remote_endpoint(ec);
  const bool tls = client_.stream().is_tls();
  const HbaRule* rule =
      ec ? nullptr : config_->hba->match(tls, login_->database, login_->user, peer.address());
  const std::string where = "host \"" + (ec ? std::string("?") : peer.address().to_string()) +
                            "\", user \"" + login_->user + "\", database \"" + login_->database +
                            "\", " + (tls ? "SSL encryption" : "no encryption");
  if (rule == nullptr) throw SessionError("28000", "no pgmux hba entry for " + where);
  switch (rule->method) {
    case HbaMethod::reject:
      throw SessionError("28000", "pgmux hba rejects connection for " + where);
    case HbaMethod::trust:
      return AuthMethod::trust;
    case HbaMethod::md5:
      return AuthMethod::md5;
    case HbaMethod::scram_sha_256:
      return AuthMethod::scram_sha_256;
    case HbaMethod::cert:
      return AuthMethod::cert;
  }
  return AuthMethod::scram_sha_256;
}

awaitable<void> ClientSession::authenticate(const UserConfig& user, AuthMethod method) {
  switch (method) {
    case AuthMethod::trust:
      break;
    case AuthMethod::md5:
      // As PostgreSQL's md5 method: a user whose secret is SCRAM authenticates with SCRAM.
      if (user.md5_hash.empty()) {
        co_await authenticate_scram(user);
      } else {
        co_await authenticate_md5(user);
      }
      break;
    case AuthMethod::scram_sha_256:
      if (!user.scram_secret) fail_auth();  // only an md5 hash is known: SCRAM cannot work
      co_await authenticate_scram(user);
      break;
    case AuthMethod::cert:
      // The certificate chained to client_tls_ca_file (the handshake checked that) and names
      // this user.
      if (client_.stream().peer_common_name() != login_->user) {
        throw SessionError("28000",
                           "certificate authentication failed for user \"" + login_->user + "\"");
      }
      break;
  }
  std::string out;
  pr::append_auth_ok(out);
  co_await client_.write(out);
}

awaitable<void> ClientSession::authenticate_unknown_user() {
  co_await run_scram(pr::mock_scram_secret(login_->user, rt_.instance_key()));
}

awaitable<void> ClientSession::authenticate_scram(const UserConfig& user) {
  const pr::ScramSecret& secret = *user.scram_secret;
  const pr::ScramKey client_key = co_await run_scram(secret);
  if (user.server_password.empty()) {
    // Pass-through: the client proved it holds ClientKey; with the secret's ServerKey that is
    // all a SCRAM login to the server needs (when the secret is the server's own).
    rt_.pools().credentials(user)->remember(
        {secret.salt, secret.iterations, client_key, secret.server_key});
  }
}

// One SCRAM-SHA-256 exchange against `secret`; returns the ClientKey the client proved. Over
// TLS, SCRAM-SHA-256-PLUS is offered too: a client that binds to pgmux's certificate
// (libpq's channel_binding=require) knows no one in between terminated its TLS.
awaitable<pr::ScramKey> ClientSession::run_scram(const pr::ScramSecret& secret) {
  const std::string binding = client_.stream().tls_server_end_point();
  pr::ScramServer scram(secret, {}, binding);
  std::string out;
  pr::append_auth_sasl(out, binding.empty() ? "SCRAM-SHA-256" : "SCRAM-SHA-256-PLUS",
                       binding.empty() ? "" : "SCRAM-SHA-256");
  co_await client_.write(out);
  pr::Frame f = co_await read_password_message();
  auto initial = pr::decode_sasl_initial_response(f.body);
  if (!initial) throw ProtocolError("malformed SASLInitialResponse");
  const bool plus = initial->mechanism == "SCRAM-SHA-256-PLUS" && !binding.empty();
  if (initial->mechanism != "SCRAM-SHA-256" && !plus) {
    throw SessionError("28000", "client selected an invalid SASL authentication mechanism");
  }
  auto server_first = scram.handle_client_first(initial->data, plus);
  if (!server_first) {
    throw SessionError("08P01",
                       "malformed SCRAM client-first-message or channel binding "
                       "negotiation error");
  }
  out.clear();
  pr::append_auth_sasl_continue(out, *server_first);
  co_await client_.write(out);
  f = co_await read_password_message();
  auto server_final = scram.handle_client_final(f.body);
  if (!server_final) {
    if (server_final.error() == boost::system::errc::permission_denied) fail_auth();
    throw SessionError("08P01", "malformed SCRAM client-final-message");
  }
  out.clear();
  pr::append_auth_sasl_final(out, *server_final);
  co_await client_.write(out);
  co_return scram.client_key();
}

awaitable<void> ClientSession::authenticate_md5(const UserConfig& user) {
  std::array<std::uint8_t, 4> salt{};
  RAND_bytes(salt.data(), static_cast<int>(salt.size()));
  std::string out;
  pr::append_auth_md5(out, salt);
  co_await client_.write(out);
  const pr::Frame f = co_await read_password_message();
  auto given = pr::decode_password(f.body);
  const std::string expected = pr::md5_salted_response(user.md5_hash, salt);
  if (!given || given->size() != expected.size() ||
      CRYPTO_memcmp(given->data(), expected.data(), expected.size()) != 0) {
    fail_auth();
  }
}

}  // namespace pgmux::pooler
