// pgmux logging in to PostgreSQL: answering the authentication the server asks for, within
// what server_auth_methods allows. SCRAM keys come from ServerCredentials (derived once, off
// the worker, or passed through from a client's proof); cleartext goes only over TLS unless
// server_cleartext_without_tls says otherwise; a server asking for more SCRAM iterations than
// server_scram_max_iterations is refused before any work is done for it.
#include <cstring>

#include "pooler/pool/server_connection.hpp"
#include "protocol/md5.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/messages.hpp"
#include "protocol/scram.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

[[noreturn]] void refuse(const ServerLogin& login, const std::string& why) {
  throw ServerError("28000", "pgmux refuses to log in to server " + login.endpoint.host + ":" +
                                 std::to_string(login.endpoint.port) + " as \"" + login.user +
                                 "\": " + why);
}

[[noreturn]] void no_credentials(const ServerLogin& login) {
  throw ServerError("28P01", "pgmux has no password to log in to the server as user \"" +
                                 login.user + "\" (set users." + login.user +
                                 ".password, or let a client log in first when only its "
                                 "SCRAM secret is configured)");
}

}  // namespace

awaitable<void> ServerConnection::authenticate() {
  for (;;) {
    const pr::Frame f = co_await io_.read_tagged(pr::kMaxAuthMessageBody);
    if (f.tag == pr::be::kErrorResponse) throw_server_error(f.body);
    if (f.tag == pr::be::kNegotiateProtocolVersion || f.tag == pr::be::kNoticeResponse) continue;
    if (f.tag != pr::be::kAuthentication) {
      throw ServerError("08P01", "unexpected message during login");
    }
    auto auth = pr::decode_authentication(f.body);
    if (!auth) throw ServerError("08P01", "malformed authentication request from server");
    switch (auth->code) {
      case pr::AuthCode::ok:
        co_return;
      case pr::AuthCode::cleartext:
        answer_cleartext();
        break;
      case pr::AuthCode::md5:
        answer_md5(auth->data);
        break;
      case pr::AuthCode::sasl:
        co_await answer_sasl(auth->data);
        continue;
      default:
        throw ServerError("08P01", "server asked for an unsupported authentication method");
    }
    co_await io_.write(out_);
  }
}

void ServerConnection::answer_cleartext() {
  const ServerAuthSettings& allowed = login_.auth;
  if (!allowed.cleartext) refuse(login_, "it asks for a cleartext password (server_auth_methods)");
  if (!io_.stream().is_tls() && !allowed.cleartext_without_tls) {
    refuse(login_,
           "it asks for the password in cleartext over a connection without TLS (set "
           "server_tls_mode, or server_cleartext_without_tls = true)");
  }
  const std::string password = login_.credentials->password();
  if (password.empty()) no_credentials(login_);
  out_.clear();
  pr::append_password(out_, password);
}

void ServerConnection::answer_md5(std::string_view data) {
  if (!login_.auth.md5) refuse(login_, "it asks for md5 (server_auth_methods)");
  if (data.size() < 4) throw ServerError("08P01", "malformed md5 request from server");
  // The stored hash is all md5 needs: a user configured with only its "md5…" hash passes.
  std::string hash = login_.credentials->md5_hash();
  if (hash.empty()) {
    const std::string password = login_.credentials->password();
    if (password.empty()) no_credentials(login_);
    hash = pr::md5_password_hash(login_.user, password);
  }
  std::array<std::uint8_t, 4> salt{};
  std::memcpy(salt.data(), data.data(), 4);
  out_.clear();
  pr::append_password(out_, pr::md5_salted_response(hash, salt));
}

awaitable<void> ServerConnection::answer_sasl(std::string_view mechanisms) {
  if (!login_.auth.scram) refuse(login_, "it asks for SCRAM-SHA-256 (server_auth_methods)");
  if (mechanisms.find(std::string_view("SCRAM-SHA-256\0", 14)) != 0 &&
      mechanisms.find(std::string_view("\0SCRAM-SHA-256\0", 15)) == std::string_view::npos) {
    throw ServerError("08P01", "server offers no SASL mechanism pgmux supports");
  }
  if (!login_.credentials->can_answer_scram()) no_credentials(login_);
  pr::ScramClient scram("");
  out_.clear();
  pr::append_sasl_initial_response(out_, "SCRAM-SHA-256", scram.client_first());
  co_await io_.write(out_);
  pr::Frame f = co_await io_.read_tagged(pr::kMaxAuthMessageBody);
  if (f.tag == pr::be::kErrorResponse) throw_server_error(f.body);
  auto auth = pr::decode_authentication(f.body);
  if (f.tag != pr::be::kAuthentication || !auth || auth->code != pr::AuthCode::sasl_continue) {
    throw ServerError("08P01", "unexpected SASL step from server");
  }
  auto first = scram.parse_server_first(auth->data);
  if (!first) throw ServerError("08P01", "invalid SCRAM server-first-message");
  if (first->iterations > login_.auth.max_scram_iterations) {
    refuse(login_, "it asks for " + std::to_string(first->iterations) +
                       " SCRAM iterations, more than server_scram_max_iterations (" +
                       std::to_string(login_.auth.max_scram_iterations) + ")");
  }
  const auto keys = co_await login_.credentials->keys_for(first->salt, first->iterations);
  if (!keys) {
    refuse(login_,
           "the SCRAM secret configured for this user is not the server's (another salt or "
           "iteration count): copy rolpassword from pg_authid, or configure a password");
  }
  out_.clear();
  pr::append_sasl_response(out_, scram.client_final(*keys));
  co_await io_.write(out_);
  f = co_await io_.read_tagged(pr::kMaxAuthMessageBody);
  if (f.tag == pr::be::kErrorResponse) throw_server_error(f.body);
  auth = pr::decode_authentication(f.body);
  if (f.tag != pr::be::kAuthentication || !auth || auth->code != pr::AuthCode::sasl_final) {
    throw ServerError("08P01", "unexpected SASL step from server");
  }
  if (!scram.verify_server_final(auth->data)) {
    throw ServerError("28000", "server's SCRAM signature did not verify");
  }
}

}  // namespace pgmux::pooler
