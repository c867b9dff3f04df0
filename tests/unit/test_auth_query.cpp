// auth_query's pure parts: a rolpassword value turned into a user, and $1 bound as a literal.
#include <doctest/doctest.h>

#include "pooler/session/auth_query.hpp"
#include "protocol/scram.hpp"

using namespace pgmux::pooler;

TEST_CASE("a rolpassword becomes a user that authenticates like PostgreSQL would") {
  const PoolSettings pool{.max_user_connections = 7};
  const std::string scram = pgmux::protocol::format_scram_secret(
      pgmux::protocol::make_scram_secret("pw", "0123456789abcdef", 4096));
  const auto s = user_from_secret("alice", scram, pool);
  REQUIRE(s.has_value());
  CHECK(s->auth == AuthMethod::scram_sha_256);
  CHECK(s->scram_secret->iterations == 4096);
  CHECK(s->server_password.empty());  // pass-through: nothing to store
  CHECK(s->max_user_connections == 7);
  const auto m = user_from_secret("bob", "md5" + std::string(32, 'a'), pool);
  REQUIRE(m.has_value());
  CHECK(m->auth == AuthMethod::md5);
  CHECK(m->md5_hash == "md5" + std::string(32, 'a'));
  // NULL (expired VALID UNTIL), empty, plaintext and malformed secrets log no one in.
  CHECK_FALSE(user_from_secret("carol", "", pool).has_value());
  CHECK_FALSE(user_from_secret("carol", "plaintext", pool).has_value());
  CHECK_FALSE(user_from_secret("carol", "SCRAM-SHA-256$broken", pool).has_value());
  CHECK_FALSE(user_from_secret("carol", "md5short", pool).has_value());
}

TEST_CASE("$1 is bound as a quoted literal, and only $1") {
  CHECK(bind_auth_query("SELECT a FROM t WHERE u = $1", "bob") ==
        "SELECT a FROM t WHERE u = 'bob'");
  CHECK(bind_auth_query("SELECT f($1) WHERE $1 <> ''", "o'brien") ==
        "SELECT f('o''brien') WHERE 'o''brien' <> ''");
  CHECK(bind_auth_query("SELECT $10, $1", "x") == "SELECT $10, 'x'");
  CHECK(bind_auth_query("SELECT $1", "'); DROP TABLE t; --") == "SELECT '''); DROP TABLE t; --'");
}
