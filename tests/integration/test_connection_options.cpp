// Startup parameters and SSL negotiation.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

TEST_CASE("application_name and options='-c …' from the startup packet apply to the session") {
  PgmuxProcess px(test_env(), {.name = "startup", .pool_size = 1, .query_wait_timeout_ms = 10000});
  INFO(px.log_tail());
  {
    PgConn c(px.conninfo("app", "secret", "app",
                         "application_name=myapp options='-c statement_timeout=4321 "
                         "-c lock_timeout=2s'"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(c.query_value("SHOW application_name") == "myapp");
    CHECK(c.query_value("SHOW statement_timeout") == "4321ms");
    CHECK(c.query_value("SHOW lock_timeout") == "2s");
    CHECK(c.query_value("SELECT application_name FROM pg_stat_activity "
                        "WHERE pid = pg_backend_pid()") == "myapp");
    const char* reported = PQparameterStatus(c.get(), "application_name");
    CHECK(std::string(reported ? reported : "(not reported)") == "myapp");
  }
  // The next client on the same server connection, without those parameters, gets defaults.
  PgConn plain(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(plain.ok(), plain.error());
  CHECK(plain.query_value("SHOW application_name") == "");
  CHECK(plain.query_value("SHOW statement_timeout") == "0");
  plain.close();

  // A setting the server rejects ends the session with the server's error, as PostgreSQL
  // would at login; pgmux applies startup settings when the session takes its server, at its
  // first query, so that is where the error arrives.
  PgConn bad(px.conninfo("app", "secret", "app", "options='-c statement_timeout=banana'"));
  REQUIRE_MESSAGE(bad.ok(), bad.error());
  const PgResult r = bad.exec("SELECT 1");
  CHECK_FALSE(r.ok());
  CHECK_MESSAGE(r.sqlstate() == "22023", r.describe());
  CHECK_MESSAGE(r.error().find("statement_timeout") != std::string::npos, r.describe());
  CHECK(PQstatus(bad.get()) == CONNECTION_BAD);
  // The server connection that rejected the setting is clean for the next client.
  PgConn after(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(after.query_value("SHOW statement_timeout") == "0");
}

TEST_CASE("a list-valued startup option (-c search_path=a,b) means what it means to PostgreSQL") {
  PgmuxProcess px(test_env(), {.name = "startuplist"});
  INFO(px.log_tail());
  // it_absent does not exist, so PostgreSQL skips it: read as a list, the effective path is
  // {public}; read as one quoted name "it_absent,public" it would be empty.
  const std::string options = "options='-c search_path=it_absent,public'";
  PgConn direct("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=app password=secret dbname=app sslmode=disable connect_timeout=10 " +
                options);
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  PgConn pooled(px.conninfo("app", "secret", "app", options));
  REQUIRE_MESSAGE(pooled.ok(), pooled.error());
  // PostgreSQL reads the value as a list of two schemas.
  REQUIRE(direct.query_value("SELECT current_schemas(false)::text") == "{public}");
  CHECK(pooled.query_value("SELECT current_schemas(false)::text") == "{public}");
  CHECK(pooled.query_value("SHOW search_path") == direct.query_value("SHOW search_path"));
  // So an unqualified CREATE TABLE lands in public.
  const PgResult r = pooled.exec("CREATE TABLE it_startup_list(x int)");
  CHECK_MESSAGE(r.ok(), r.describe());
  if (r.ok()) {
    CHECK(pooled.query_value("SELECT to_regclass('public.it_startup_list') IS NOT NULL") == "t");
    pooled.run("DROP TABLE it_startup_list");
  }
}

TEST_CASE("RESET, RESET ALL and DISCARD ALL return startup settings to their startup values") {
  const std::string options = "options='-c datestyle=SQL,DMY -c search_path=it_start'";
  PgConn direct("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=app password=secret dbname=app sslmode=disable connect_timeout=10 " +
                options);
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  for (const char* mode : {"session", "transaction"}) {
    CAPTURE(mode);
    PgmuxProcess px(test_env(), {.name = std::string("reset-") + mode, .mode = mode});
    INFO(px.log_tail());
    PgConn pooled(px.conninfo("app", "secret", "app", options));
    REQUIRE_MESSAGE(pooled.ok(), pooled.error());
    // Each step, then what the session shows and was last told (ParameterStatus), compared
    // with the same steps on a direct connection.
    for (const char* step :
         {"SET datestyle = ISO", "RESET datestyle", "SET datestyle = German", "RESET ALL",
          "SET datestyle = Postgres; SET search_path = other", "DISCARD ALL"}) {
      CAPTURE(step);
      REQUIRE(direct.exec(step).ok());
      const PgResult r = pooled.exec(step);
      REQUIRE_MESSAGE(r.ok(), r.describe());
      const std::string want_style = direct.query_value("SHOW datestyle");
      CHECK(pooled.query_value("SHOW datestyle") == want_style);
      CHECK(pooled.query_value("SHOW search_path") == direct.query_value("SHOW search_path"));
      const char* told = PQparameterStatus(pooled.get(), "DateStyle");
      CHECK(std::string(told != nullptr ? told : "(none)") == want_style);
    }
    CHECK(pooled.query_value("SHOW datestyle") == "SQL, DMY");
  }
}

TEST_CASE("statements that change no setting cost no settings read-back on the server") {
  PgConn direct("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=app password=secret dbname=app sslmode=disable connect_timeout=10");
  REQUIRE_MESSAGE(direct.ok(), direct.error());
  for (const char* mode : {"session", "transaction"}) {
    CAPTURE(mode);
    PgmuxProcess px(test_env(), {.name = std::string("quiet-") + mode, .mode = mode});
    INFO(px.log_tail());
    PgConn c(px.conninfo("app", "secret", "app", "application_name=it_quiet"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    // The last statement the client's server backend ran is the client's own, whatever the
    // protocol: pgmux read nothing back after it. pgmux reads settings back after it has
    // forwarded ReadyForQuery, so "nothing" is judged after a pause, and a read-back is
    // waited for.
    const std::string last =
        "SELECT query FROM pg_stat_activity WHERE application_name = 'it_quiet'";
    auto last_after_pause = [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return direct.query_value(last);
    };
    auto reads_back = [&] {
      for (int i = 0; i < 100; ++i) {
        if (direct.query_value(last).find("current_setting") != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return false;
    };
    const PgResult extended = c.exec_params("SELECT $1::int + 1", {"6"});
    REQUIRE_MESSAGE(extended.ok(), extended.describe());
    CHECK(last_after_pause() == "SELECT $1::int + 1");
    CHECK(c.query_value("SELECT 'simple'") == "simple");
    CHECK(last_after_pause() == "SELECT 'simple'");
    // A SET is read back in transaction mode, where settings follow the client to its next
    // server; a session-pooled client keeps its server, so only a RESET is (to restore a
    // startup value).
    c.run("SET work_mem = '5MB'");
    if (std::string(mode) == "session") {
      CHECK(last_after_pause() == "SET work_mem = '5MB'");
    } else {
      CHECK(reads_back());
    }
    c.run("RESET work_mem");
    CHECK(reads_back());
    CHECK(c.query_value("SHOW work_mem") == direct.query_value("SHOW work_mem"));
  }
}

TEST_CASE("a startup option whose name is not a setting name is refused at login (42602)") {
  PgmuxProcess px(test_env(), {.name = "badname", .mode = "session"});
  INFO(px.log_tail());
  PgConn bad(px.conninfo("app", "secret", "app", "options='-c a;b=1'"));
  CHECK_FALSE(bad.ok());
  CHECK_MESSAGE(bad.error().find("invalid configuration parameter name") != std::string::npos,
                bad.error());
  PgConn after(px.conninfo("app", "secret"));
  CHECK_MESSAGE(after.ok(), after.error());
}

TEST_CASE("sslmode=prefer falls back to plain text; sslmode=require fails cleanly") {
  PgmuxProcess px(test_env(), {.name = "ssl"});
  INFO(px.log_tail());
  {
    PgConn c(px.conninfo("app", "secret", "app", "sslmode=prefer"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    CHECK(PQsslInUse(c.get()) == 0);
    CHECK(c.query_value("SELECT 'plain'") == "plain");
  }
  const auto start = Clock::now();
  PgConn c(px.conninfo("app", "secret", "app", "sslmode=require"));
  const double took = seconds_since(start);
  CAPTURE(took);
  CHECK_FALSE(c.ok());
  CHECK_MESSAGE(c.error().find("SSL") != std::string::npos, c.error());
  CHECK(took < 5.0);
  // pgmux keeps serving.
  PgConn after(px.conninfo("app", "secret"));
  CHECK_MESSAGE(after.ok(), after.error());
}
