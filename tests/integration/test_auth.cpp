// Client authentication (SCRAM, md5) and server authentication (SCRAM, md5, cleartext).
#include <doctest/doctest.h>

#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;

TEST_CASE("users log in with SCRAM, md5 and cleartext-on-the-server; bad logins are refused") {
  PgmuxProcess px(test_env(),
                  {.name = "auth", .extra_toml = "[users.trustme]\nauth = \"trust\"\n"});
  INFO(px.log_tail());

  SUBCASE("app logs in with SCRAM-SHA-256") {
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(PQconnectionUsedPassword(c.get()) == 1);
    CHECK(c.query_value("SELECT current_user") == "app");
    CHECK(c.query_value("SELECT session_user") == "app");
  }

  SUBCASE("a wrong password is refused with 'password authentication failed'") {
    PgConn c(px.conninfo("app", "wrong-password"));
    CHECK_FALSE(c.ok());
    CHECK_MESSAGE(c.error().find("password authentication failed") != std::string::npos, c.error());
    // pgmux is fine afterwards.
    PgConn good(px.conninfo("app", "secret"));
    CHECK_MESSAGE(good.ok(), good.error());
  }

  SUBCASE("md5user authenticates to pgmux with md5 and pgmux logs in to the server with md5") {
    PgConn c(px.conninfo("md5user", "md5pass"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SELECT current_user") == "md5user");
    const RawLogin raw = raw_login(px.port(), "md5user", "app", "md5pass");
    CHECK_MESSAGE(raw.ready, raw.sqlstate, " ", raw.message);
    const RawLogin wrong = raw_login(px.port(), "md5user", "app", "md5-wrong");
    CHECK_FALSE(wrong.ready);
    CHECK_MESSAGE(wrong.sqlstate == "28P01", wrong.message);
    PgConn bad(px.conninfo("md5user", "nope"));
    CHECK_FALSE(bad.ok());
    CHECK_MESSAGE(bad.error().find("password authentication failed") != std::string::npos,
                  bad.error());
  }

  SUBCASE("pwuser logs in although the server asks pgmux for a cleartext password") {
    PgConn c(px.conninfo("pwuser", "pwpass"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SELECT current_user") == "pwuser");
    CHECK(c.query_value("SELECT 6 * 7") == "42");
  }

  SUBCASE("admin logs in to a normal database like any user") {
    PgConn c(px.conninfo("admin", "adminpass"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SELECT current_user") == "admin");
  }

  SUBCASE("an unknown database is refused with 'does not exist' (SQLSTATE 3D000)") {
    PgConn c(px.conninfo("app", "secret", "no_such_db"));
    CHECK_FALSE(c.ok());
    CHECK_MESSAGE(c.error().find("does not exist") != std::string::npos, c.error());
    // libpq does not expose a login error's SQLSTATE: read it with a raw client (trust user).
    const RawLogin raw = raw_login(px.port(), "trustme", "no_such_db", "");
    CHECK_FALSE(raw.ready);
    CHECK_MESSAGE(raw.sqlstate == "3D000", raw.message);
    CHECK(raw.message.find("does not exist") != std::string::npos);
  }

  SUBCASE("an unknown user is refused (SQLSTATE 28P01)") {
    PgConn c(px.conninfo("nobody_here", "whatever"));
    CHECK_FALSE(c.ok());
    CHECK_MESSAGE(c.error().find("authentication failed") != std::string::npos, c.error());
    // pgmux may answer at once or first ask for a (SCRAM) password it will reject anyway;
    // only the former shows the SQLSTATE without a SCRAM exchange.
    const RawLogin raw = raw_login(px.port(), "nobody_here", "app", "whatever");
    CHECK_FALSE(raw.ready);
    if (!raw.asked_scram) CHECK_MESSAGE(raw.sqlstate == "28P01", raw.message);
  }
}
