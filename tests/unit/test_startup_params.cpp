// Startup parameter expansion and the SET batch that aligns a pooled server with a client.
#include <doctest/doctest.h>

#include "pooler/startup_params.hpp"

using namespace pgmux::pooler;

TEST_CASE("options are split on blanks with backslash escapes") {
  CHECK(split_options("-c a=1  -c b=2") == std::vector<std::string>{"-c", "a=1", "-c", "b=2"});
  CHECK(split_options("-c search_path=a\\ b") == std::vector<std::string>{"-c", "search_path=a b"});
  CHECK(split_options("   ").empty());
}

TEST_CASE("startup settings exclude user, database and protocol options, and expand -c") {
  const ParamList startup = {
      {"user", "app"},
      {"database", "shop"},
      {"application_name", "web"},
      {"_pq_.compression", "on"},
      {"options", "-c statement_timeout=5s -cwork-mem=64MB --DateStyle=ISO"}};
  const auto s = collect_startup_settings(startup);
  CHECK(s.error.empty());
  const ParamList expected = {{"application_name", "web"},
                              {"statement_timeout", "5s"},
                              {"work_mem", "64MB"},
                              {"DateStyle", "ISO"}};
  CHECK(s.settings == expected);
}

TEST_CASE("unsupported options and replication connections are refused") {
  CHECK_FALSE(collect_startup_settings({{"options", "-d 5"}}).error.empty());
  CHECK_FALSE(collect_startup_settings({{"options", "-c novalue"}}).error.empty());
  CHECK_FALSE(collect_startup_settings({{"replication", "database"}}).error.empty());
  CHECK(collect_startup_settings({{"replication", "false"}}).error.empty());
}

TEST_CASE("the SET batch skips values the server already has, case-insensitively") {
  ParameterMap server;
  server["DateStyle"] = "ISO, MDY";
  server["application_name"] = "";
  server["client_encoding"] = "UTF8";
  const ParamList wanted = {{"datestyle", "ISO, MDY"},
                            {"client_encoding", "UTF8"},
                            {"application_name", "it's"},
                            {"search_path", "s1"}};
  const auto b = build_set_batch(wanted, server);
  CHECK(b.error.empty());
  CHECK(b.sql ==
        "SELECT pg_catalog.set_config('application_name', 'it''s', false), "
        "pg_catalog.set_config('search_path', 's1', false)");
  CHECK(build_set_batch({{"DateStyle", "ISO, MDY"}}, server).sql.empty());
}

TEST_CASE("list values pass through as one raw string, as a startup option would") {
  const auto b = build_set_batch({{"search_path", "pg_catalog,public"}}, {});
  CHECK(b.sql == "SELECT pg_catalog.set_config('search_path', 'pg_catalog,public', false)");
}

TEST_CASE("names that are not GUC-shaped cannot inject SQL") {
  const auto b = build_set_batch({{"a; drop table x; --", "1"}}, {});
  CHECK(b.sql.empty());
  CHECK_FALSE(b.error.empty());
  CHECK(quote_literal("a'b") == "'a''b'");
}
