// The settings table: every row reads and prints the same member, refuses what is out of range,
// and the docs generated from it are the ones in the checkout.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "pooler/config/settings.hpp"

using namespace pgmux::pooler;

namespace {

const std::string kMinimal = R"(
[databases.app]
primary = { host = "127.0.0.1", port = 5432 }
[users.app]
password = "secret"
)";

std::string read_file(const std::string& relative) {
  std::ifstream in(std::string(PGMUX_SOURCE_DIR) + "/" + relative, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string with_key(const SettingView& s, const std::string& literal) {
  return "[" + std::string(s.section) + "]\n" + std::string(s.key) + " = " + literal + "\n" +
         kMinimal;
}

// A valid value other than the default, as TOML writes it; empty for the few keys whose
// values need files or other tables (they have tests of their own).
std::string other_value(const SettingView& s) {
  static const std::set<std::string_view> needs_more = {
      "client_tls_mode", "auth_user", "hba_file", "server_tls_cert_file", "server_tls_key_file"};
  if (needs_more.contains(s.key)) return "";
  if (s.key == "metrics_listen") return "\"127.0.0.1:9999\"";
  if (!s.example.empty()) return std::string(s.example);
  switch (s.kind) {
    case SettingKind::integer:
      return std::to_string(s.default_value == std::to_string(s.min) ? s.max : s.min);
    case SettingKind::number:
      return toml_number(static_cast<double>(s.min));
    case SettingKind::boolean:
      return s.default_value == "true" ? "false" : "true";
    case SettingKind::choice: {
      const std::string first = toml_quote(s.choices[0]);
      return s.default_value == first ? toml_quote(s.choices[1]) : first;
    }
    case SettingKind::list:
      return "[\"md5\"]";
    case SettingKind::text:
      return "\"x-test\"";
  }
  return "";
}

}  // namespace

TEST_CASE("README.md and etc/pgmux.toml hold what the settings table generates") {
  // Out of date: run scripts/settings-docs.sh after changing pooler/config/settings*.cpp.
  const std::string readme = read_file("README.md");
  const auto readme_now =
      replace_generated(readme, kMarkdownBegin, kMarkdownEnd, settings_markdown());
  REQUIRE(readme_now.has_value());
  CHECK(*readme_now == readme);
  const std::string toml = read_file("etc/pgmux.toml");
  const auto toml_now = replace_generated(toml, kTomlBegin, kTomlEnd, settings_toml());
  REQUIRE(toml_now.has_value());
  CHECK(*toml_now == toml);
  // The generated sections alone are a valid configuration holding every default.
  const auto config = load_config_from_string(settings_toml() + kMinimal, "generated.toml");
  for (const SettingView& s : describe_settings(*config)) {
    CAPTURE(s.key);
    // A default described in words (lag_monitor_user: the first user with a password) is
    // resolved when the file is read.
    if (s.default_doc.empty()) CHECK(s.value == s.default_value);
  }
}

TEST_CASE("every row of the settings table reads and prints the same member") {
  std::set<std::string_view> names;
  int checked = 0;
  for (const SettingView& s : describe_settings(Config{})) {
    CAPTURE(s.section);
    CAPTURE(s.key);
    CHECK(names.insert(s.name).second);  // SHOW CONFIG and SET names are unique
    CHECK_FALSE(s.doc.empty());
    const std::string literal = other_value(s);
    if (literal.empty()) continue;
    REQUIRE(literal != s.default_value);
    const auto config = load_config_from_string(with_key(s, literal), "row.toml");
    const auto found = find_setting(s.name);
    REQUIRE(found.has_value());
    for (const SettingView& after : describe_settings(*config)) {
      if (after.key == s.key && after.section == s.section) CHECK(after.value == literal);
    }
    ++checked;
  }
  CHECK(checked + 5 == static_cast<int>(names.size()));  // all but the five needing more
}

TEST_CASE("every integer row refuses values beyond its range, every choice row other words") {
  for (const SettingView& s : describe_settings(Config{})) {
    CAPTURE(s.key);
    std::vector<std::string> bad;
    if (s.kind == SettingKind::integer) {
      bad = {std::to_string(s.min - 1), std::to_string(s.max + 1), "\"12\""};
    } else if (s.kind == SettingKind::choice) {
      bad = {"\"no-such-word\"", "1"};
    } else if (s.kind == SettingKind::boolean) {
      bad = {"\"yes\""};
    }
    for (const std::string& literal : bad) {
      CAPTURE(literal);
      try {
        (void)load_config_from_string(with_key(s, literal), "bad.toml");
        FAIL("accepted");
      } catch (const ConfigError& e) {
        // The message names file, line and the dotted key.
        const std::string where =
            "bad.toml:2: key '" + std::string(s.section) + "." + std::string(s.key) + "'";
        CHECK(std::string(e.what()).find(where) != std::string::npos);
      }
    }
  }
}

TEST_CASE("find_setting knows names, sections and which settings a running pgmux changes") {
  REQUIRE(find_setting("default_pool_size").has_value());
  CHECK(find_setting("default_pool_size")->applies == Applies::at_once);
  CHECK(find_setting("default_pool_size")->key == "size");
  CHECK(find_setting("size")->name == "default_pool_size");
  CHECK(find_setting("query_wait_timeout_ms")->section == "pool");
  CHECK(find_setting("causal_wait_ms")->section == "routing");
  CHECK(find_setting("listen_port")->applies == Applies::after_restart);
  CHECK(find_setting("workers")->applies == Applies::after_restart);
  CHECK(find_setting("server_auth_methods")->kind == SettingKind::list);
  CHECK_FALSE(find_setting("no_such_setting").has_value());
}

TEST_CASE("SET values are written as the kind of their setting") {
  auto c = load_config_from_string(kMinimal, "set.toml",
                                   {{.section = "routing",
                                     .toml_key = "read_only_transactions_to_replicas",
                                     .value = "off",
                                     .kind = SettingKind::boolean},
                                    {.section = "routing",
                                     .toml_key = "readmit_ratio",
                                     .value = "0.25",
                                     .kind = SettingKind::number},
                                    {.section = "routing",
                                     .toml_key = "read_write_split",
                                     .value = "off",
                                     .kind = SettingKind::choice}});
  CHECK_FALSE(c->routing.read_only_transactions_to_replicas);
  CHECK(c->routing.readmit_ratio == doctest::Approx(0.25));
  CHECK_FALSE(c->routing.read_write_split);
  CHECK_THROWS_AS((void)load_config_from_string(kMinimal, "set.toml",
                                                {{.section = "routing",
                                                  .toml_key = "readmit_ratio",
                                                  .value = "2",
                                                  .kind = SettingKind::number}}),
                  ConfigError);
}
