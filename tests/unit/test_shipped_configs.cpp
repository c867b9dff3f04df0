// The configurations the project ships load as they are: etc/pgmux.toml (every key with its
// default) and the embedded default scripts/run-local.sh fills in, which must show what pgmux
// is for (transaction pooling, read/write routing, read-your-writes, metrics).
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "pooler/config/config.hpp"

using namespace pgmux::pooler;

namespace {

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(PGMUX_SOURCE_DIR) + "/" + relative);
  REQUIRE_MESSAGE(in.good(), "cannot open ", relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces every @NAME@ as scripts/run-local.sh does with sed.
std::string fill_placeholders(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    const std::string mark = "@" + name + "@";
    for (auto at = text.find(mark); at != std::string::npos; at = text.find(mark, at)) {
      text.replace(at, mark.size(), value);
    }
  }
  return text;
}

}  // namespace

TEST_CASE("etc/pgmux.toml, the reference of every key, loads") {
  const auto c = load_config_from_string(read_source_file("etc/pgmux.toml"), "etc/pgmux.toml");
  CHECK_FALSE(c->databases.empty());
}

TEST_CASE("the embedded default routes reads, pools transactions and serves metrics") {
  const std::string text =
      fill_placeholders(read_source_file("etc/pgmux-local.toml.in"), {{"PRIMARY_PORT", "5432"},
                                                                      {"REPLICA_PORT", "5433"},
                                                                      {"LISTEN_PORT", "6432"},
                                                                      {"METRICS_PORT", "9930"}});
  // Every placeholder is one the script fills.
  REQUIRE_FALSE(std::regex_search(text, std::regex("@[A-Z_]+@")));
  const auto c = load_config_from_string(text, "pgmux-local.toml");
  CHECK(c->general.metrics_listen == "127.0.0.1:9930");
  const auto& app = c->databases.at("app");
  const auto& user = c->users.at("app");
  CHECK(Config::mode_for(app, user) == PoolMode::transaction);
  CHECK(app.replicas.size() == 1);
  CHECK(app.routing.read_write_split);
  CHECK(app.routing.read_your_writes == ReadYourWrites::client);
}
