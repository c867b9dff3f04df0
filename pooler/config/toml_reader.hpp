// Strict reading of one TOML table: typed getters that leave struct defaults untouched when a
// key is absent, errors that name file, line and dotted key, and rejection of unknown keys.
#pragma once

#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <toml.hpp>

namespace pgmux::pooler {

class TomlTable {
 public:
  // `path` is the dotted name of the table ("pool", "databases.app").
  TomlTable(const toml::value& value, std::string path);

  [[nodiscard]] bool has(std::string_view key) const;
  [[nodiscard]] const toml::value* find(std::string_view key);

  void get(std::string_view key, std::string& out);
  void get(std::string_view key, bool& out);
  void get(std::string_view key, std::vector<std::string>& out);
  // Integers with an inclusive range check.
  void get(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max);
  void get(std::string_view key, int& out, int min, int max);
  // A number (integer or float) with an inclusive range check.
  void get(std::string_view key, double& out, double min, double max);
  // One of `choices`; returns the index chosen, or -1 when the key is absent.
  int get_choice(std::string_view key, std::span<const std::string_view> choices);
  int get_choice(std::string_view key, std::initializer_list<std::string_view> choices) {
    return get_choice(key, std::span<const std::string_view>(choices.begin(), choices.size()));
  }

  // Throws ConfigError for any key no getter asked about.
  void reject_unknown_keys() const;

  [[noreturn]] void fail(const toml::value& at, std::string_view key,
                         const std::string& problem) const;
  [[noreturn]] void fail_table(const std::string& problem) const;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string key_path(std::string_view key) const;

 private:
  const toml::value& value_;
  std::string path_;
  std::set<std::string, std::less<>> used_;
};

// "FILE:LINE" for a value's position in its source.
[[nodiscard]] std::string where(const toml::value& v);

}  // namespace pgmux::pooler
