// Startup parameter expansion and the SET batch that aligns a pooled server with a client.
#include <doctest/doctest.h>

#include "pooler/session/startup_params.hpp"

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

TEST_CASE("startup settings whose names are not GUC-shaped are refused as PostgreSQL does") {
  const auto s = collect_startup_settings({{"options", "-c a;drop_table_x=1"}});
  CHECK(s.error == "invalid configuration parameter name \"a;drop_table_x\"");
  CHECK(s.sqlstate == "42602");
  CHECK(collect_startup_settings({{"bad name", "1"}}).sqlstate == "42602");
  CHECK(collect_startup_settings({{"options", "-c work-mem=4MB"}}).error.empty());
  CHECK(collect_startup_settings({{"options", "-d 5"}}).sqlstate == "08P01");
  CHECK(quote_literal("a'b") == "'a''b'");
}

TEST_CASE("list values pass through as one raw string, as a startup option would") {
  ParameterMap wanted;
  wanted["search_path"] = "pg_catalog,public";
  CHECK(build_settings_sync(wanted, {}) ==
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog,public', false)");
}

TEST_CASE("settings sync is empty when the server already has the client's settings") {
  ParameterMap wanted;
  wanted["search_path"] = "a";
  wanted["TimeZone"] = "UTC";
  CHECK(build_settings_sync(wanted, wanted).empty());
  CHECK(build_settings_sync({}, {}).empty());
}

TEST_CASE("settings sync sets differing and new values, and resets the rest to default") {
  ParameterMap wanted;
  wanted["application_name"] = "web";
  wanted["search_path"] = "b";
  ParameterMap applied;
  applied["application_name"] = "web";
  applied["search_path"] = "a";
  CHECK(build_settings_sync(wanted, applied) ==
        "SELECT pg_catalog.set_config('search_path', 'b', false)");

  ParameterMap fresh;
  fresh["work_mem"] = "64MB";
  CHECK(build_settings_sync(fresh, {}) ==
        "SELECT pg_catalog.set_config('work_mem', '64MB', false)");

  ParameterMap leftover;
  leftover["statement_timeout"] = "5s";
  CHECK(build_settings_sync({}, leftover) ==
        "SELECT pg_catalog.set_config('statement_timeout', NULL, false)");

  // All three at once: wanted settings first (in name order), then the resets.
  ParameterMap w2;
  w2["a_x"] = "1";
  w2["search_path"] = "b";
  ParameterMap a2;
  a2["search_path"] = "a";
  a2["work_mem"] = "4MB";
  CHECK(build_settings_sync(w2, a2) ==
        "SELECT pg_catalog.set_config('a_x', '1', false), "
        "pg_catalog.set_config('search_path', 'b', false), "
        "pg_catalog.set_config('work_mem', NULL, false)");
}

TEST_CASE("settings sync quotes values and accepts custom dotted settings") {
  ParameterMap wanted;
  wanted["application_name"] = "it's 'quoted'";
  wanted["myapp.tenant"] = "42";
  CHECK(build_settings_sync(wanted, {}) ==
        "SELECT pg_catalog.set_config('application_name', 'it''s ''quoted''', false), "
        "pg_catalog.set_config('myapp.tenant', '42', false)");
  ParameterMap empty_value;
  empty_value["application_name"] = "";
  CHECK(build_settings_sync(empty_value, {}) ==
        "SELECT pg_catalog.set_config('application_name', '', false)");
}

TEST_CASE("settings sync matches names case-insensitively") {
  ParameterMap wanted;
  wanted["TimeZone"] = "UTC";
  wanted["DateStyle"] = "ISO, MDY";
  ParameterMap applied;
  applied["timezone"] = "UTC";
  applied["DATESTYLE"] = "SQL, DMY";
  // Same name in another case: no reset, only the differing value is set.
  CHECK(build_settings_sync(wanted, applied) ==
        "SELECT pg_catalog.set_config('DateStyle', 'ISO, MDY', false)");
  applied["DATESTYLE"] = "ISO, MDY";
  CHECK(build_settings_sync(wanted, applied).empty());
}

TEST_CASE("settings sync skips names that are not GUC-shaped") {
  ParameterMap wanted;
  wanted["a; drop table x; --"] = "1";
  wanted["search_path"] = "s";
  ParameterMap applied;
  applied["bad name"] = "x";
  applied["x')--"] = "y";
  CHECK(build_settings_sync(wanted, applied) ==
        "SELECT pg_catalog.set_config('search_path', 's', false)");
  ParameterMap only_bad;
  only_bad["bad-name"] = "1";
  CHECK(build_settings_sync(only_bad, {}).empty());
  CHECK(build_settings_sync({}, only_bad).empty());
  CHECK(build_settings_sync(only_bad, applied).empty());
}
