// [pgmux] hba_file: pg_hba.conf-format rules decide who may log in and how; client
// certificates as an authentication method; RELOAD re-reads the file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

std::string tls_dir() {
  return (test_env().cluster().dir() / "tls").string();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

const char* kRules = R"(
# TYPE     DATABASE  USER     ADDRESS        METHOD
hostssl    all       app      127.0.0.1/32   cert
hostnossl  all       app      127.0.0.1/32   reject
host       pgmux     admin    127.0.0.1/32   scram-sha-256
host       all       md5user  127.0.0.1/32   md5
host       all       pwuser   10.0.0.0/8     trust
)";

}  // namespace

TEST_CASE("hba rules: cert, reject, md5 and no entry; RELOAD re-reads the file") {
  const std::filesystem::path hba = test_env().unique_stem("hba").string() + ".conf";
  write_file(hba, kRules);
  const std::string toml = "hba_file = \"" + hba.string() +
                           "\"\nclient_tls_mode = \"prefer\"\nclient_tls_cert_file = \"" +
                           tls_dir() + "/pgmux.crt\"\nclient_tls_key_file = \"" + tls_dir() +
                           "/pgmux.key\"\nclient_tls_ca_file = \"" + tls_dir() + "/ca.crt\"";
  PgmuxProcess px(test_env(), {.name = "hba", .mode = "transaction", .pgmux_toml = toml});
  INFO(px.log_tail());
  const std::string client_cert = "sslmode=require sslcert=" + tls_dir() +
                                  "/client-app.crt sslkey=" + tls_dir() + "/client-app.key";
  // app presents its certificate (CN=app): no password is asked.
  PgConn by_cert(px.conninfo("app", "not-the-password", "app", client_cert));
  REQUIRE_MESSAGE(by_cert.ok(), by_cert.error());
  CHECK(by_cert.query_value("SELECT current_user") == "app");
  // Over TLS without a certificate: refused.
  PgConn no_cert(px.conninfo("app", "secret", "app", "sslmode=require"));
  CHECK_FALSE(no_cert.ok());
  CHECK_MESSAGE(no_cert.error().find("certificate authentication failed for user \"app\"") !=
                    std::string::npos,
                no_cert.error());
  // Without TLS: the hostnossl line rejects.
  PgConn plain(px.conninfo("app", "secret", "app", "sslmode=disable"));
  CHECK_FALSE(plain.ok());
  CHECK_MESSAGE(plain.error().find("pgmux hba rejects connection for host \"127.0.0.1\", user "
                                   "\"app\", database \"app\", no encryption") != std::string::npos,
                plain.error());
  // md5 line, and the admin console line.
  PgConn md5(px.conninfo("md5user", "md5pass"));
  CHECK_MESSAGE(md5.ok(), md5.error());
  PgConn admin(px.conninfo("admin", "adminpass", "pgmux"));
  REQUIRE_MESSAGE(admin.ok(), admin.error());
  // pwuser's only line is for 10.0.0.0/8.
  PgConn nowhere(px.conninfo("pwuser", "pwpass"));
  CHECK_FALSE(nowhere.ok());
  CHECK_MESSAGE(nowhere.error().find("no pgmux hba entry for host \"127.0.0.1\", user "
                                     "\"pwuser\"") != std::string::npos,
                nowhere.error());

  // RELOAD: pwuser from here may log in with trust (any password).
  std::string reloaded = kRules;
  reloaded += "host all pwuser 127.0.0.1/32 trust\n";
  write_file(hba, reloaded);
  const PgResult r = admin.exec("RELOAD");
  CHECK_MESSAGE(r.status() == PGRES_COMMAND_OK, r.describe());
  PgConn trusted(px.conninfo("pwuser", "anything"));
  CHECK_MESSAGE(trusted.ok(), trusted.error());
  CHECK(by_cert.query_value("SELECT 'still here'") == "still here");

  // A broken file is refused and the running rules stay.
  write_file(hba, "host all all 127.0.0.1/32 ldap\n");
  const PgResult bad = admin.exec("RELOAD");
  CHECK_FALSE(bad.ok());
  CHECK_MESSAGE(bad.error().find("line 1: authentication method \"ldap\"") != std::string::npos,
                bad.describe());
  PgConn still(px.conninfo("pwuser", "anything"));
  CHECK_MESSAGE(still.ok(), still.error());
}

TEST_CASE("auth = \"cert\" for a user: its certificate is its login") {
  const std::string toml = "client_tls_mode = \"prefer\"\nclient_tls_cert_file = \"" + tls_dir() +
                           "/pgmux.crt\"\nclient_tls_key_file = \"" + tls_dir() +
                           "/pgmux.key\"\nclient_tls_ca_file = \"" + tls_dir() + "/ca.crt\"";
  PgmuxProcess px(test_env(),
                  {.name = "user-cert",
                   .mode = "transaction",
                   .pgmux_toml = toml,
                   .users_toml = "[users.app]\nauth = \"cert\"\nserver_password = \"secret\"\n"
                                 "[users.admin]\npassword = \"adminpass\"\n"});
  INFO(px.log_tail());
  PgConn ok(px.conninfo("app", "", "app",
                        "sslmode=require sslcert=" + tls_dir() +
                            "/client-app.crt sslkey=" + tls_dir() + "/client-app.key"));
  REQUIRE_MESSAGE(ok.ok(), ok.error());
  CHECK(ok.query_value("SELECT current_user") == "app");
  // admin's certificate? It has none; and app's certificate does not make one admin.
  PgConn wrong_user(px.conninfo("admin", "", "pgmux",
                                "sslmode=require sslcert=" + tls_dir() +
                                    "/client-app.crt sslkey=" + tls_dir() + "/client-app.key"));
  CHECK_FALSE(wrong_user.ok());
  PgConn plain(px.conninfo("app", "secret", "app", "sslmode=disable"));
  CHECK_FALSE(plain.ok());
  CHECK_MESSAGE(plain.error().find("certificate authentication failed") != std::string::npos,
                plain.error());
}
