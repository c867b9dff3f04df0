// TLS on both legs: clients to pgmux (SSLRequest and PostgreSQL 17's direct TLS, modes,
// certificate reload) and pgmux to the servers (modes, verify-full host names, a user the
// server admits only over TLS). The cluster's servers run with ssl = on and certificates from
// the fixture's throw-away CA (scripts/pg-cluster.sh make_certs).
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "admin_stats.hpp"
#include "command.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

std::string tls_dir() {
  return (test_env().cluster().dir() / "tls").string();
}

// [pgmux] lines for client TLS in `mode` with the fixture's pgmux certificate.
std::string client_tls_toml(const std::string& mode, const std::string& cert = "pgmux") {
  return "client_tls_mode = \"" + mode + "\"\nclient_tls_cert_file = \"" + tls_dir() + "/" + cert +
         ".crt\"\nclient_tls_key_file = \"" + tls_dir() + "/" + cert +
         ".key\"\nclient_tls_ca_file = \"" + tls_dir() + "/ca.crt\"";
}

// libpq options that verify pgmux's certificate and host name.
std::string verify_full() {
  return "sslmode=verify-full sslrootcert=" + tls_dir() + "/ca.crt";
}

// The common name of the certificate the server showed this connection.
std::string peer_common_name(const PgConn& c) {
  auto* ssl = static_cast<SSL*>(PQsslStruct(c.get(), "OpenSSL"));
  if (ssl == nullptr) return "(no TLS)";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "(no certificate)";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return cn;
}

// Does the server see this session's connection from pgmux encrypted?
std::string server_side_ssl(PgConn& c) {
  return c.query_value("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
}

std::string run_direct_tls(const PgmuxProcess& px, const std::string& alpn) {
  const CommandResult r =
      run_command({.argv = {"/usr/bin/python3",
                            std::string(PGMUX_SOURCE_DIR) + "/tests/integration/direct_tls.py",
                            std::to_string(px.port()), tls_dir() + "/ca.crt", alpn},
                   .timeout = std::chrono::seconds(20)});
  return r.exit_code == 0 ? r.out : "failed: " + r.describe();
}

}  // namespace

TEST_CASE("client TLS: verify-full through pgmux, plain text refused under require") {
  PgmuxProcess px(
      test_env(),
      {.name = "client-tls", .mode = "transaction", .pgmux_toml = client_tls_toml("require")});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret", "app", verify_full()));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(PQsslInUse(c.get()) == 1);
  CHECK(peer_common_name(c) == "localhost");
  const char* protocol = PQsslAttribute(c.get(), "protocol");
  CHECK((protocol != nullptr && std::string(protocol).starts_with("TLSv1.")));
  CHECK(c.query_value("SELECT 'over tls'") == "over tls");
  // A large result and a large parameter cross the TLS leg whole.
  CHECK(c.query_value("SELECT length(string_agg(md5(i::text), '')) FROM generate_series(1, "
                      "20000) i") == "640000");
  const std::string big(300000, 'x');
  CHECK(c.exec_params("SELECT length($1)", {big}).value(0, 0) == "300000");

  PgConn plain(px.conninfo("app", "secret", "app", "sslmode=disable"));
  CHECK_FALSE(plain.ok());
  CHECK_MESSAGE(plain.error().find("TLS is required") != std::string::npos, plain.error());

  // The admin console is reached the same way, and shows both legs' TLS.
  PgConn admin(px.conninfo("admin", "adminpass", "pgmux", verify_full()));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  CHECK(PQsslInUse(admin.get()) == 1);
  for (const char* view : {"SHOW CLIENTS", "SHOW SERVERS"}) {
    CAPTURE(view);
    const PgResult shown = admin.exec(view);
    REQUIRE(shown.ok());
    const int tls_col = PQfnumber(shown.get(), "tls");
    REQUIRE(tls_col >= 0);
    REQUIRE(shown.rows() >= 1);
    CHECK(shown.value(0, tls_col).starts_with("TLSv1."));
  }
  CHECK(c.query_value("SELECT 'still here'") == "still here");
}

TEST_CASE("client TLS prefer: TLS when asked, plain text otherwise; idle TLS clients park") {
  PgmuxProcess px(test_env(),
                  {.name = "client-tls-prefer",
                   .mode = "transaction",
                   .pgmux_toml = client_tls_toml("prefer") + "\nclient_dormant_after_ms = 200"});
  INFO(px.log_tail());
  PgConn tls(px.conninfo("app", "secret", "app", "sslmode=require"));
  PgConn plain(px.conninfo("app", "secret", "app", "sslmode=disable"));
  REQUIRE_MESSAGE(tls.ok(), tls.error());
  REQUIRE_MESSAGE(plain.ok(), plain.error());
  CHECK(PQsslInUse(tls.get()) == 1);
  CHECK(PQsslInUse(plain.get()) == 0);
  // Idle long enough for the plain client to go dormant; the TLS one stays parked with its
  // TLS session. Both answer afterwards, repeatedly.
  std::this_thread::sleep_for(milliseconds(700));
  for (int i = 0; i < 20; ++i) {
    CHECK(tls.query_value("SELECT " + std::to_string(i)) == std::to_string(i));
    CHECK(plain.query_value("SELECT " + std::to_string(i)) == std::to_string(i));
  }
  std::this_thread::sleep_for(milliseconds(700));
  CHECK(tls.query_value("SELECT 'after idle'") == "after idle");
}

TEST_CASE("direct TLS (PostgreSQL 17's handshake) needs ALPN postgresql") {
  PgmuxProcess px(test_env(), {.name = "direct-tls", .pgmux_toml = client_tls_toml("require")});
  INFO(px.log_tail());
  const std::string ok = run_direct_tls(px, "postgresql");
  // 10 = AuthenticationSASL: pgmux took the startup packet over TLS and asks for SCRAM.
  CHECK_MESSAGE(ok.starts_with("auth-request 10 postgresql"), ok);
  const std::string no_alpn = run_direct_tls(px, "-");
  CHECK_MESSAGE(no_alpn.starts_with("error 08P01"), no_alpn);
  const std::string other = run_direct_tls(px, "http/1.1");
  CHECK_MESSAGE(other.starts_with("error 08P01"), other);
  PgConn after(px.conninfo("app", "secret", "app", verify_full()));
  CHECK_MESSAGE(after.ok(), after.error());
}

TEST_CASE("RELOAD takes new certificate files; connected TLS clients keep their sessions") {
  // A copy of pgmux's certificate that the test can replace.
  const std::filesystem::path dir = test_env().unique_stem("certs");
  std::filesystem::create_directories(dir);
  for (const char* f : {"pgmux.crt", "pgmux.key"}) {
    std::filesystem::copy_file(tls_dir() + "/" + f, dir / f);
  }
  ::chmod((dir / "pgmux.key").c_str(), 0600);
  std::string toml = "client_tls_mode = \"require\"\nclient_tls_cert_file = \"" +
                     (dir / "pgmux.crt").string() + "\"\nclient_tls_key_file = \"" +
                     (dir / "pgmux.key").string() + "\"";
  PgmuxProcess px(test_env(), {.name = "tls-reload", .pgmux_toml = toml});
  INFO(px.log_tail());
  PgConn before(px.conninfo("app", "secret", "app", verify_full()));
  REQUIRE_MESSAGE(before.ok(), before.error());
  CHECK(peer_common_name(before) == "localhost");

  // A new certificate from the same CA, with another CN.
  const std::string d = dir.string(), ca = tls_dir();
  const CommandResult made = run_command(
      {.argv = {"bash", "-c",
                "set -e; cd '" + d +
                    "'; openssl req -new -nodes -newkey rsa:2048 -keyout new.key -out new.csr "
                    "-subj /CN=renewed 2>/dev/null; printf 'subjectAltName=DNS:localhost,IP:"
                    "127.0.0.1\\n' > new.ext; openssl x509 -req -in new.csr -CA '" +
                    ca + "/ca.crt' -CAkey '" + ca +
                    "/ca.key' -CAcreateserial -CAserial serial -days 2 -extfile new.ext -out "
                    "new.crt 2>/dev/null; chmod 600 new.key; mv new.crt pgmux.crt; mv new.key "
                    "pgmux.key"},
       .timeout = std::chrono::seconds(30)});
  REQUIRE_MESSAGE(made.exit_code == 0, made.describe());
  PgConn admin(px.conninfo("admin", "adminpass", "pgmux", verify_full()));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  const PgResult reload = admin.exec("RELOAD");
  CHECK_MESSAGE(reload.status() == PGRES_COMMAND_OK, reload.describe());

  PgConn after(px.conninfo("app", "secret", "app", verify_full()));
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(peer_common_name(after) == "renewed");
  CHECK(before.query_value("SELECT 'kept'") == "kept");
  CHECK(peer_common_name(before) == "localhost");

  // A key readable by others is refused, and the running certificates stay.
  ::chmod((dir / "pgmux.key").c_str(), 0644);
  const PgResult refused = admin.exec("RELOAD");
  CHECK_FALSE(refused.ok());
  CHECK_MESSAGE(refused.error().find("group or world access") != std::string::npos,
                refused.describe());
  PgConn still(px.conninfo("app", "secret", "app", verify_full()));
  CHECK_MESSAGE(still.ok(), still.error());
}

TEST_CASE("server TLS: prefer uses it, verify-full checks the host name, disable does not") {
  const std::string port = std::to_string(test_env().cluster().primary_port());
  const std::string ca = tls_dir() + "/ca.crt";
  auto database = [&](const std::string& name, const std::string& host, const std::string& mode) {
    return "\n[databases." + name + "]\ndbname = \"app\"\nprimary = { host = \"" + host +
           "\", port = " + port + " }\nserver_tls_mode = \"" + mode +
           "\"\nserver_tls_ca_file = \"" + ca + "\"\n";
  };
  PgmuxProcess px(test_env(), {.name = "server-tls",
                               .mode = "transaction",
                               .extra_toml = database("full", "localhost", "verify-full") +
                                             database("wrongname", "127.0.0.1", "verify-full") +
                                             database("cafull", "127.0.0.1", "verify-ca") +
                                             database("plain", "127.0.0.1", "disable") +
                                             database("allowed", "127.0.0.1", "allow") +
                                             "\n[users.tlsonly]\npassword = \"tlspass\"\n"});
  INFO(px.log_tail());
  auto connect = [&](const std::string& db, const std::string& user = "app",
                     const std::string& password = "secret") {
    return PgConn(px.conninfo(user, password, db));
  };
  PgConn prefer = connect("app");  // no server_tls_mode: prefer, and the server has TLS
  REQUIRE_MESSAGE(prefer.ok(), prefer.error());
  CHECK(server_side_ssl(prefer) == "t");
  PgConn full = connect("full");
  REQUIRE_MESSAGE(full.ok(), full.error());
  CHECK(server_side_ssl(full) == "t");
  PgConn ca_only = connect("cafull");
  REQUIRE_MESSAGE(ca_only.ok(), ca_only.error());
  CHECK(server_side_ssl(ca_only) == "t");
  PgConn plain = connect("plain");
  REQUIRE_MESSAGE(plain.ok(), plain.error());
  CHECK(server_side_ssl(plain) == "f");

  // The certificate names "localhost", not 127.0.0.1: verify-full refuses the server.
  PgConn wrong = connect("wrongname");
  const std::string mismatch = first_failure(wrong);
  CHECK_MESSAGE(mismatch.find("TLS to server 127.0.0.1:") != std::string::npos, mismatch);
  CHECK_MESSAGE(mismatch.find("address mismatch") != std::string::npos, mismatch);

  // tlsonly is admitted by the server only over TLS (hostssl): disable fails, allow retries
  // with TLS after the refusal, prefer uses TLS from the start.
  PgConn refused = connect("plain", "tlsonly", "tlspass");
  const std::string no = first_failure(refused);
  CHECK_MESSAGE(no.find("pg_hba.conf") != std::string::npos, no);
  PgConn allowed = connect("allowed", "tlsonly", "tlspass");
  REQUIRE(allowed.ok());
  CHECK(server_side_ssl(allowed) == "t");
  PgConn preferred = connect("app", "tlsonly", "tlspass");
  REQUIRE(preferred.ok());
  CHECK(server_side_ssl(preferred) == "t");
  CHECK(full.query_value("SELECT 'still here'") == "still here");
}

TEST_CASE("server TLS required of a server without it fails with a clear error") {
  const std::string port = std::to_string(test_env().cluster().primary_port());
  // The replica has TLS too; a server without it is simulated by a database whose primary
  // is pgmux itself with client TLS off, which answers the SSLRequest with N.
  PgmuxProcess inner(test_env(),
                     {.name = "no-tls-inner", .pgmux_toml = "client_tls_mode = \"disable\""});
  PgmuxProcess px(
      test_env(),
      {.name = "server-tls-required",
       .mode = "transaction",
       .extra_toml = "\n[databases.notls]\ndbname = \"app\"\nprimary = { host = "
                     "\"127.0.0.1\", port = " +
                     std::to_string(inner.port()) + " }\nserver_tls_mode = \"require\"\n"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret", "notls"));
  const std::string failure = first_failure(c);
  CHECK_MESSAGE(failure.find("does not support TLS") != std::string::npos, failure);
}

TEST_CASE("bad TLS settings stop pgmux at start with a message naming the file") {
  const std::filesystem::path dir = test_env().unique_stem("badkey");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(tls_dir() + "/pgmux.crt", dir / "pgmux.crt");
  std::filesystem::copy_file(tls_dir() + "/pgmux.key", dir / "pgmux.key");
  ::chmod((dir / "pgmux.key").c_str(), 0644);
  const std::string toml = "client_tls_mode = \"require\"\nclient_tls_cert_file = \"" +
                           (dir / "pgmux.crt").string() + "\"\nclient_tls_key_file = \"" +
                           (dir / "pgmux.key").string() + "\"";
  std::string failure;
  try {
    PgmuxProcess px(test_env(), {.name = "bad-key", .pgmux_toml = toml});
  } catch (const std::exception& e) {
    failure = e.what();
  }
  CHECK_MESSAGE(failure.find("group or world access") != std::string::npos, failure);
  CHECK_MESSAGE(failure.find("pgmux.key") != std::string::npos, failure);

  std::string missing;
  try {
    PgmuxProcess px(test_env(), {.name = "no-cert", .pgmux_toml = "client_tls_mode = \"prefer\""});
  } catch (const std::exception& e) {
    missing = e.what();
  }
  CHECK_MESSAGE(missing.find("client_tls_cert_file") != std::string::npos, missing);
}

TEST_CASE("one TLS server connection serves clients on both workers in turn") {
  // pool_size 1 and two workers: consecutive clients land on different workers, so the one
  // server connection is handed from worker to worker with its TLS session.
  PgmuxProcess px(test_env(), {.name = "tls-handover", .pool_size = 1, .mode = "transaction"});
  INFO(px.log_tail());
  PgConn a(px.conninfo("app", "secret"));
  PgConn b(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(a.ok(), a.error());
  REQUIRE_MESSAGE(b.ok(), b.error());
  const std::string pid = a.query_value("SELECT pg_backend_pid()");
  for (int i = 0; i < 50; ++i) {
    PgConn& c = i % 2 == 0 ? a : b;
    CHECK(c.query_value("SELECT pg_backend_pid()") == pid);
    CHECK(server_side_ssl(c) == "t");
  }
  PgConn admin(px.conninfo("admin", "adminpass", "pgmux"));
  REQUIRE(admin.ok());
  const PgResult servers = admin.exec("SHOW SERVERS");
  REQUIRE(servers.ok());
  int app_servers = 0;
  for (int r = 0; r < servers.rows(); ++r) app_servers += servers.value(r, 1) == "app" ? 1 : 0;
  CHECK(app_servers == 1);
}
