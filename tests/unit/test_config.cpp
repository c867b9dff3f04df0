// Config loading: defaults, overrides, and errors that name file, line and key.
#include <doctest/doctest.h>

#include "pooler/config/config.hpp"

using namespace pgmux::pooler;

namespace {

const char* kMinimal = R"(
[databases.app]
primary = { host = "127.0.0.1", port = 5432 }
[users.app]
password = "secret"
)";

std::string error_of(const std::string& text) {
  try {
    (void)load_config_from_string(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("an almost empty file yields the documented defaults") {
  auto c = load_config_from_string(kMinimal, "test.toml");
  CHECK(c->general.listen_port == 6432);
  CHECK(c->general.listen_addr == "127.0.0.1");
  CHECK(c->pool.mode == PoolMode::session);
  CHECK(c->pool.size == 20);
  CHECK(c->pool.max_client_conn == 10000);
  CHECK(c->pool.query_wait_timeout_ms == 120000);
  const DatabaseConfig* db = c->find_database("app");
  REQUIRE(db != nullptr);
  CHECK(db->dbname == "app");
  CHECK(db->pool_size == 20);
  CHECK(db->replicas.empty());
  const UserConfig* u = c->find_user("app");
  REQUIRE(u != nullptr);
  CHECK(u->auth == AuthMethod::scram_sha_256);
  CHECK(u->server_password == "secret");
  CHECK(u->scram_secret.has_value());
  CHECK(u->md5_hash.starts_with("md5"));
  CHECK(c->is_admin("admin"));
  CHECK_FALSE(c->is_admin("app"));
}

TEST_CASE("the issue's example shape loads with its overrides") {
  auto c = load_config_from_string(R"(
[pgmux]
listen_addr = "127.0.0.1"
listen_port = 7000
workers = 2
admin_users = ["boss"]
[pool]
mode = "transaction"
size = 5
max_client_conn = 100
query_wait_timeout_ms = 1000
[databases.app]
dbname = "real_app"
primary = { host = "127.0.0.1", port = 5432 }
replicas = [ { host = "127.0.0.1", port = 5433 }, { host = "localhost", port = 5434 } ]
pool_size = 30
[users.app]
password = "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9U6W2dxvaVmDyGiC6UwoRS3YVNCbAAwIj9pE=:VpYlBuxyPfiK/KAqxGy17IcRvJsdUnsqnnXpdrYEnkQ="
server_password = "secret"
[users.legacy]
auth = "md5"
password = "md5596948aad3fcae80c08a35c9b5958cd"
[users.ops]
auth = "trust"
)",
                                   "t.toml");
  CHECK(c->general.listen_port == 7000);
  CHECK(c->worker_count() == 2);
  CHECK(c->is_admin("boss"));
  CHECK(c->pool.mode == PoolMode::transaction);
  const DatabaseConfig* db = c->find_database("app");
  REQUIRE(db != nullptr);
  CHECK(db->dbname == "real_app");
  CHECK(db->pool_size == 30);
  CHECK(db->mode == PoolMode::transaction);
  REQUIRE(db->replicas.size() == 2);
  CHECK(db->replicas[1].host == "localhost");
  CHECK(db->replicas[1].port == 5434);
  CHECK(c->find_user("app")->scram_secret->iterations == 4096);
  CHECK(c->find_user("legacy")->md5_hash.size() == 35);
  CHECK(c->find_user("ops")->auth == AuthMethod::trust);
}

TEST_CASE("unknown keys are rejected with file, line and dotted key") {
  const std::string e = error_of(std::string(kMinimal) + "[pool]\nsize = 5\nsise = 6\n");
  CHECK(e.find("test.toml:8") != std::string::npos);
  CHECK(e.find("'pool.sise'") != std::string::npos);
  CHECK(e.find("unknown key") != std::string::npos);
  CHECK(error_of(std::string(kMinimal) + "[bogus]\nx = 1\n").find("'bogus'") != std::string::npos);
  CHECK(error_of("[databases.app]\nprimary = { host = \"h\", prot = 1 }\n")
            .find("'databases.app.primary.prot'") != std::string::npos);
}

TEST_CASE("bad values are rejected with the reason") {
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {"[pool]\nsize = 0\n", "out of range"},
      {"[pool]\nsize = \"ten\"\n", "expected an integer"},
      {"[pool]\nmode = \"statement-ish\"\n", "is not one of"},
      {"[pgmux]\nlisten_port = 70000\n", "out of range"},
      {"[pgmux]\nadmin_users = \"admin\"\n", "expected an array"},
      {"[databases.app]\ndbname = \"x\"\n", "needs a 'primary'"},
      {"[databases.app]\nprimary = { port = 5 }\n", "needs a non-empty 'host'"},
      {"[users.app]\nauth = \"scram-sha-256\"\n", "needs a 'password'"},
      {"[users.app]\npassword = \"SCRAM-SHA-256$bad\"\n", "malformed SCRAM"},
      {"[users.app]\nauth = \"md5\"\npassword = "
       "\"SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9U6W2dxvaVmDyGiC6UwoRS3YVNCbAAwIj9pE=:"
       "VpYlBuxyPfiK/KAqxGy17IcRvJsdUnsqnnXpdrYEnkQ=\"\n",
       "md5 auth needs"},
      {"[pool\nsize = 1\n", "test.toml"},  // TOML syntax error names the file
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(error_of(c.text).find(c.expect) != std::string::npos);
  }
}

TEST_CASE("a missing file is a clear error") {
  CHECK_THROWS_WITH_AS((void)load_config("/nonexistent/pgmux.toml"),
                       "/nonexistent/pgmux.toml: cannot open file", ConfigError);
}

TEST_CASE("connection caps, reserve pool and login retry: defaults and overrides") {
  auto d = load_config_from_string(kMinimal, "test.toml");
  CHECK(d->pool.reserve_pool_size == 0);
  CHECK(d->pool.reserve_pool_timeout_ms == 5000);
  CHECK(d->pool.server_login_retry_ms == 1000);
  CHECK(d->find_database("app")->max_db_connections == 0);
  CHECK(d->find_user("app")->max_user_connections == 0);

  auto c = load_config_from_string(R"(
[pool]
reserve_pool_size = 2
reserve_pool_timeout_ms = 300
max_db_connections = 8
max_user_connections = 6
server_login_retry_ms = 0
[databases.app]
primary = { host = "127.0.0.1", port = 5432 }
[databases.big]
primary = { host = "127.0.0.1", port = 5432 }
reserve_pool_size = 5
max_db_connections = 50
[users.app]
password = "secret"
[users.batch]
password = "secret"
max_user_connections = 1
)",
                                   "t.toml");
  CHECK(c->pool.reserve_pool_timeout_ms == 300);
  CHECK(c->pool.server_login_retry_ms == 0);
  CHECK(c->find_database("app")->reserve_pool_size == 2);
  CHECK(c->find_database("app")->max_db_connections == 8);
  CHECK(c->find_database("big")->reserve_pool_size == 5);
  CHECK(c->find_database("big")->max_db_connections == 50);
  CHECK(c->find_user("app")->max_user_connections == 6);
  CHECK(c->find_user("batch")->max_user_connections == 1);
  CHECK(
      error_of(std::string(kMinimal) + "[pool]\nmax_db_connections = -1\n").find("out of range") !=
      std::string::npos);
}

TEST_CASE("routing keys: [routing] defaults, database and user overrides") {
  auto d = load_config_from_string(kMinimal, "test.toml");
  CHECK(d->routing.read_write_split);  // on: databases without replicas are unaffected
  CHECK(d->find_database("app")->routing.primary_reads == pgmux::router::PrimaryReads::fallback);
  CHECK(d->find_database("app")->target == pgmux::router::Target::primary);
  auto c = load_config_from_string(R"(
[pool]
size = 8
[routing]
read_write_split = "on"
load_balancing = "least_connections"
replica_ban_ms = 500
write_functions = ["audit"]
[databases.app]
primary = { host = "127.0.0.1", port = 5432 }
replicas = [ { host = "127.0.0.1", port = 5433, weight = 3 } ]
primary_reads = "always"
[databases.ro]
primary = { host = "127.0.0.1", port = 5432 }
replicas = [ { host = "127.0.0.1", port = 5433 } ]
target = "replica"
read_write_split = "off"
replica_pool_size = 2
[users.app]
password = "secret"
primary_reads = "never"
)",
                                   "t.toml");
  const DatabaseConfig* app = c->find_database("app");
  CHECK(app->routing.read_write_split);
  CHECK(app->routing.load_balancing == pgmux::router::Balancing::least_connections);
  CHECK(app->routing.replica_ban_ms == 500);
  CHECK(app->routing.write_functions == std::vector<std::string>{"audit"});
  CHECK(app->routing.primary_reads == pgmux::router::PrimaryReads::always);
  CHECK(app->replicas[0].weight == 3);
  CHECK(app->replica_pool_size == 8);
  const DatabaseConfig* ro = c->find_database("ro");
  CHECK(ro->target == pgmux::router::Target::replica);
  CHECK_FALSE(ro->routing.read_write_split);
  CHECK(ro->replica_pool_size == 2);
  const auto rules = Config::rules_for(*app, *c->find_user("app"));
  CHECK(rules.read_write_split);
  CHECK(rules.primary_reads == pgmux::router::PrimaryReads::never);
  CHECK(error_of(std::string(kMinimal) + "[databases.x]\nprimary = { host = \"h\" }\n"
                                         "target = \"replica\"\n")
            .find("needs at least one entry in replicas") != std::string::npos);
  CHECK(error_of("[databases.x]\nprimary = { host = \"h\", weight = 2 }\n").find("weight") !=
        std::string::npos);
}

TEST_CASE("SET overrides rebuild the config as if the file said so") {
  const std::string text = std::string(kMinimal) + R"(
[databases.own]
primary = { host = "127.0.0.1", port = 5432 }
pool_size = 3
)";
  auto c = load_config_from_string(
      text, "test.toml",
      {{.section = "pool", .toml_key = "size", .value = "7", .kind = SettingKind::integer},
       {.section = "pool", .toml_key = "mode", .value = "transaction"},
       {.section = "pgmux", .toml_key = "log_level", .value = "debug"}});
  CHECK(c->pool.size == 7);
  CHECK(c->find_database("app")->pool_size == 7);  // follows the default
  CHECK(c->find_database("own")->pool_size == 3);  // its own value wins, as in the file
  CHECK(c->pool.mode == PoolMode::transaction);
  CHECK(c->general.log_level == "debug");
  CHECK(c->source_text == text);
  CHECK(c->overrides.size() == 3);
  // A value of the wrong type or out of range is refused like a bad file.
  CHECK_THROWS_AS(
      (void)load_config_from_string(
          text, "test.toml",
          {{.section = "pool", .toml_key = "size", .value = "x", .kind = SettingKind::integer}}),
      ConfigError);
  CHECK_THROWS_AS(
      (void)load_config_from_string(
          text, "test.toml",
          {{.section = "pool", .toml_key = "size", .value = "0", .kind = SettingKind::integer}}),
      ConfigError);
}

TEST_CASE("a fleet: so_reuseport, peer_id and [peers.ID]") {
  auto d = load_config_from_string(kMinimal, "test.toml");
  CHECK_FALSE(d->general.so_reuseport);
  CHECK(d->general.peer_id == 0);
  CHECK(d->peers.empty());
  auto c = load_config_from_string(std::string(kMinimal) + R"(
[peers.1]
host = "10.0.0.1"
port = 6432
[peers.2]
host = "pgmux-2.internal"
port = 6433
[pgmux]
so_reuseport = true
peer_id = 2
)",
                                   "test.toml");
  CHECK(c->general.so_reuseport);
  CHECK(c->general.peer_id == 2);
  REQUIRE(c->peers.size() == 2);
  CHECK(c->peers.at(1).host == "10.0.0.1");
  CHECK(c->peers.at(2).host == "pgmux-2.internal");
  CHECK(c->peers.at(2).port == 6433);
  for (const char* bad :
       {"[peers.0]\nhost = \"a\"\n", "[peers.256]\nhost = \"a\"\n", "[peers.one]\nhost = \"a\"\n",
        "[peers.3]\nport = 1\n", "[peers.3]\nhost = \"a\"\nhsot = \"b\"\n"}) {
    INFO(bad);
    CHECK_FALSE(error_of(std::string(kMinimal) + bad).empty());
  }
  CHECK(error_of(std::string(kMinimal) + "[peers.0]\nhost = \"a\"\n").find("1-255") !=
        std::string::npos);
  CHECK(error_of(std::string(kMinimal) + "[pgmux]\npeer_id = 256\n").find("out of range") !=
        std::string::npos);
}
