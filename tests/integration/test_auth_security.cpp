// No plaintext where a hash will do, and logins that give nothing away: SCRAM and md5
// pass-through with only the server's secrets configured, SCRAM-SHA-256-PLUS over TLS,
// unknown users indistinguishable from wrong passwords, what pgmux refuses to answer a server
// (cleartext without TLS, methods not allowed, absurd SCRAM iteration counts), and refused
// cancel requests counted.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

PgConn superuser() {
  return PgConn("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=admin password=adminpass dbname=app sslmode=disable connect_timeout=10");
}

// pg_authid's stored secret for `role`, creating the role with `password` if needed.
std::string stored_secret(const std::string& role, const std::string& password,
                          const std::string& encryption = "scram-sha-256") {
  PgConn su = superuser();
  REQUIRE_MESSAGE(su.ok(), su.error());
  su.run("SET password_encryption = '" + encryption + "'");
  if (su.query_value("SELECT count(*) FROM pg_roles WHERE rolname = '" + role + "'") == "0") {
    su.run("CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'");
  }
  return su.query_value("SELECT rolpassword FROM pg_authid WHERE rolname = '" + role + "'");
}

std::string tls_dir() {
  return (test_env().cluster().dir() / "tls").string();
}

}  // namespace

TEST_CASE("SCRAM pass-through: only the server's secret is configured, no password anywhere") {
  const std::string secret = stored_secret("passthru", "pt-Secret-1");
  REQUIRE(secret.starts_with("SCRAM-SHA-256$"));
  for (const char* mode : {"transaction", "session"}) {
    CAPTURE(mode);
    PgmuxProcess px(test_env(), {.name = std::string("passthru-") + mode,
                                 .mode = mode,
                                 .users_toml = "[users.passthru]\npassword = \"" + secret +
                                               "\"\n[users.admin]\npassword = \"adminpass\"\n"});
    INFO(px.log_tail());
    PgConn c(px.conninfo("passthru", "pt-Secret-1"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SELECT current_user") == "passthru");
    // A second client, and new server connections, reuse the keys the first proof gave.
    PgConn d(px.conninfo("passthru", "pt-Secret-1"));
    REQUIRE_MESSAGE(d.ok(), d.error());
    d.run("BEGIN");
    CHECK(c.query_value("SELECT 'second server'") == "second server");
    d.run("COMMIT");
    PgConn wrong(px.conninfo("passthru", "not-the-password"));
    CHECK_FALSE(wrong.ok());
    CHECK(wrong.error().find("password authentication failed") != std::string::npos);
  }
  // The config's text holds no password: the secret cannot log in by itself.
  CHECK(secret.find("pt-Secret-1") == std::string::npos);
}

TEST_CASE("SCRAM pass-through with a secret that is not the server's fails clearly") {
  (void)stored_secret("passthru", "pt-Secret-1");
  // A secret for the same password with another salt, made by PostgreSQL itself: clients
  // authenticate against it, and the server refuses the keys it yields.
  PgConn su = superuser();
  REQUIRE(su.ok());
  su.run("SET password_encryption = 'scram-sha-256'");
  su.run("DROP ROLE IF EXISTS passthru_other");
  su.run("CREATE ROLE passthru_other LOGIN PASSWORD 'pt-Secret-1'");
  const std::string foreign =
      su.query_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'passthru_other'");
  su.run("DROP ROLE passthru_other");
  PgmuxProcess px(test_env(), {.name = "passthru-mismatch",
                               .mode = "transaction",
                               .users_toml = "[users.passthru]\npassword = \"" + foreign +
                                             "\"\n[users.admin]\npassword = \"adminpass\"\n"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("passthru", "pt-Secret-1"));
  const std::string failure = first_failure(c);
  CHECK_MESSAGE(failure.find("not the server's") != std::string::npos, failure);
}

TEST_CASE("md5 pass-through: the stored md5 hash is all pgmux needs") {
  const std::string hash = stored_secret("md5user", "md5pass", "md5");
  REQUIRE(hash.starts_with("md5"));
  PgmuxProcess px(test_env(),
                  {.name = "md5-passthru",
                   .mode = "transaction",
                   .users_toml = "[users.md5user]\nauth = \"md5\"\npassword = \"" + hash +
                                 "\"\n[users.admin]\npassword = \"adminpass\"\n"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("md5user", "md5pass"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT current_user") == "md5user");
}

TEST_CASE("SCRAM-SHA-256-PLUS: libpq's channel_binding=require works over TLS to pgmux") {
  const std::string toml = "client_tls_mode = \"prefer\"\nclient_tls_cert_file = \"" + tls_dir() +
                           "/pgmux.crt\"\nclient_tls_key_file = \"" + tls_dir() + "/pgmux.key\"";
  PgmuxProcess px(test_env(), {.name = "channel-binding", .pgmux_toml = toml});
  INFO(px.log_tail());
  PgConn bound(px.conninfo(
      "app", "secret", "app",
      "sslmode=verify-full sslrootcert=" + tls_dir() + "/ca.crt channel_binding=require"));
  REQUIRE_MESSAGE(bound.ok(), bound.error());
  CHECK(bound.query_value("SELECT 'bound'") == "bound");
  // Clients that do not bind still log in over TLS, and without TLS.
  PgConn tls_only(px.conninfo("app", "secret", "app", "sslmode=require channel_binding=disable"));
  CHECK_MESSAGE(tls_only.ok(), tls_only.error());
  PgConn plain(px.conninfo("app", "secret", "app", "sslmode=disable"));
  CHECK_MESSAGE(plain.ok(), plain.error());
  // Without TLS there is nothing to bind to: libpq refuses rather than downgrade.
  PgConn refused(px.conninfo("app", "secret", "app", "sslmode=disable channel_binding=require"));
  CHECK_FALSE(refused.ok());
  // A wrong password over the bound exchange fails as usual.
  PgConn wrong(px.conninfo("app", "nope", "app", "sslmode=require channel_binding=require"));
  CHECK_FALSE(wrong.ok());
  CHECK(wrong.error().find("password authentication failed") != std::string::npos);
}

TEST_CASE("an unknown user fails exactly like a wrong password") {
  PgmuxProcess px(test_env(), {.name = "enumeration"});
  INFO(px.log_tail());
  PgConn unknown(px.conninfo("nosuchuser", "whatever"));
  PgConn wrong(px.conninfo("app", "whatever"));
  REQUIRE_FALSE(unknown.ok());
  REQUIRE_FALSE(wrong.ok());
  auto normalised = [](std::string e, const std::string& user) {
    const auto at = e.find("\"" + user + "\"");
    if (at != std::string::npos) e.replace(at, user.size() + 2, "\"USER\"");
    const auto port = e.find("failed: ");
    return port == std::string::npos ? e : e.substr(port);
  };
  CHECK(normalised(unknown.error(), "nosuchuser") == normalised(wrong.error(), "app"));
  // And the exchange itself: the unknown user is asked for SCRAM like a real one.
  RawClient raw(px.port());
  REQUIRE(raw.send(startup_packet({{"user", "nosuchuser"}, {"database", "app"}})));
  RawClient::Message m;
  REQUIRE(raw.read_message(m, milliseconds(5000)) == RawClient::Status::data);
  CHECK(m.tag == 'R');
  REQUIRE(m.body.size() >= 4);
  CHECK(m.body.substr(0, 4) == be32(10));  // AuthenticationSASL
  CHECK(m.body.find("SCRAM-SHA-256") != std::string::npos);
}

TEST_CASE("pgmux refuses what a server should not ask of it") {
  const std::string port = std::to_string(test_env().cluster().primary_port());
  // pwuser's server asks for a cleartext password (pg_hba "password").
  const std::string plain_db =
      "\n[databases.plain]\ndbname = \"app\"\nprimary = { host = "
      "\"127.0.0.1\", port = " +
      port + " }\nserver_tls_mode = \"disable\"\n";
  {
    PgmuxProcess px(test_env(),
                    {.name = "cleartext-refused", .mode = "transaction", .extra_toml = plain_db});
    INFO(px.log_tail());
    PgConn c(px.conninfo("pwuser", "pwpass", "plain"));
    const std::string failure = first_failure(c);
    CHECK_MESSAGE(failure.find("cleartext over a connection without TLS") != std::string::npos,
                  failure);
    // Over TLS (the default, prefer) the same login is fine.
    PgConn tls(px.conninfo("pwuser", "pwpass"));
    CHECK_MESSAGE(first_failure(tls).empty(), first_failure(tls));
  }
  {
    PgmuxProcess px(test_env(), {.name = "cleartext-allowed",
                                 .mode = "transaction",
                                 .pgmux_toml = "server_cleartext_without_tls = true",
                                 .extra_toml = plain_db});
    INFO(px.log_tail());
    PgConn c(px.conninfo("pwuser", "pwpass", "plain"));
    CHECK_MESSAGE(first_failure(c).empty(), first_failure(c));
  }
  {
    PgmuxProcess px(test_env(), {.name = "methods",
                                 .mode = "transaction",
                                 .pgmux_toml = "server_auth_methods = [\"scram-sha-256\"]"});
    INFO(px.log_tail());
    PgConn c(px.conninfo("md5user", "md5pass"));
    const std::string failure = first_failure(c);
    CHECK_MESSAGE(failure.find("md5 (server_auth_methods)") != std::string::npos, failure);
    PgConn scram(px.conninfo("app", "secret"));
    CHECK_MESSAGE(first_failure(scram).empty(), first_failure(scram));
  }
}

TEST_CASE("a server demanding 10,000,000 SCRAM iterations is refused before any work") {
  PgConn su = superuser();
  REQUIRE(su.ok());
  // A well-formed secret with an absurd count; PostgreSQL stores what it is given.
  su.run("DROP ROLE IF EXISTS iterbomb");
  su.run(
      "CREATE ROLE iterbomb LOGIN PASSWORD 'SCRAM-SHA-256$10000000:c2FsdHNhbHRzYWx0c2FsdA==$"
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='");
  PgmuxProcess px(test_env(), {.name = "iterations",
                               .mode = "transaction",
                               .extra_toml = "[users.iterbomb]\npassword = \"whatever\"\n"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("iterbomb", "whatever"));
  const std::string failure = first_failure(c);
  CHECK_MESSAGE(failure.find("10000000 SCRAM iterations") != std::string::npos, failure);
  CHECK_MESSAGE(failure.find("server_scram_max_iterations") != std::string::npos, failure);
  // Other users are served meanwhile.
  PgConn other(px.conninfo("app", "secret"));
  CHECK_MESSAGE(first_failure(other).empty(), first_failure(other));
  su.run("DROP ROLE iterbomb");
}

TEST_CASE("refused cancel requests are counted and logged") {
  PgmuxProcess px(test_env(), {.name = "cancel-refused"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE(c.ok());
  const int pid = PQbackendPID(c.get());
  {
    RawClient raw(px.port());
    REQUIRE(raw.send(cancel_request_packet(pid, 12345)));
    std::string ignored;
    raw.read_until_closed(ignored, milliseconds(2000));
  }
  CHECK(px.wait_for_log("cancel request refused: wrong secret for key " + std::to_string(pid),
                        milliseconds(2000)));
  CHECK(c.query_value("SELECT 'unharmed'") == "unharmed");
}

TEST_CASE("auth_query: users not in the config log in with the server's secrets") {
  PgConn su = superuser();
  REQUIRE(su.ok());
  su.run("SET password_encryption = 'scram-sha-256'");
  su.run("DROP ROLE IF EXISTS aq_user");
  su.run("DROP ROLE IF EXISTS aq_expired");
  su.run("CREATE ROLE aq_user LOGIN PASSWORD 'aq-pass'");
  su.run("CREATE ROLE aq_expired LOGIN PASSWORD 'aq-pass' VALID UNTIL '2000-01-01'");
  PgmuxProcess px(test_env(), {.name = "auth-query",
                               .mode = "transaction",
                               .pgmux_toml = "auth_user = \"admin\"\nauth_cache_ttl_ms = 1000"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("aq_user", "aq-pass"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT current_user") == "aq_user");
  PgConn again(px.conninfo("aq_user", "aq-pass"));  // from the cache
  CHECK_MESSAGE(again.ok(), again.error());

  auto refused = [&](const std::string& user, const std::string& password) {
    PgConn x(px.conninfo(user, password));
    return !x.ok() && x.error().find("password authentication failed for user \"" + user + "\"") !=
                          std::string::npos;
  };
  CHECK(refused("aq_user", "wrong"));
  CHECK(refused("aq_expired", "aq-pass"));  // VALID UNTIL is in the past
  CHECK(refused("aq_nobody", "aq-pass"));   // no such role: like a wrong password

  // A changed password takes effect within auth_cache_ttl_ms.
  su.run("ALTER ROLE aq_user PASSWORD 'aq-new'");
  std::this_thread::sleep_for(milliseconds(1200));
  PgConn fresh(px.conninfo("aq_user", "aq-new"));
  CHECK_MESSAGE(fresh.ok(), fresh.error());
  if (fresh.ok()) CHECK(fresh.query_value("SELECT 'new password'") == "new password");
  CHECK(refused("aq_user", "aq-pass"));
  CHECK(c.query_value("SELECT 'first client unharmed'") == "first client unharmed");
  su.run("DROP ROLE aq_expired");
}
