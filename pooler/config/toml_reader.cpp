// Strict TOML table reader used by the config loader.
#include "pooler/config/toml_reader.hpp"

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

std::string where(const toml::value& v) {
  const auto loc = v.location();
  return loc.file_name() + ":" + std::to_string(loc.line());
}

TomlTable::TomlTable(const toml::value& value, std::string path)
    : value_(value), path_(std::move(path)) {
  if (!value_.is_table()) fail_table("must be a table");
}

std::string TomlTable::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void TomlTable::fail(const toml::value& at, std::string_view key,
                     const std::string& problem) const {
  throw ConfigError(where(at) + ": key '" + key_path(key) + "': " + problem);
}

void TomlTable::fail_table(const std::string& problem) const {
  throw ConfigError(where(value_) + ": table '" + path_ + "': " + problem);
}

bool TomlTable::has(std::string_view key) const {
  return value_.as_table().count(std::string(key)) > 0;
}

const toml::value* TomlTable::find(std::string_view key) {
  used_.emplace(key);
  const auto& t = value_.as_table();
  auto it = t.find(std::string(key));
  return it == t.end() ? nullptr : &it->second;
}

void TomlTable::get(std::string_view key, std::string& out) {
  const toml::value* v = find(key);
  if (v == nullptr) return;
  if (!v->is_string()) fail(*v, key, "expected a string");
  out = v->as_string().str;
}

void TomlTable::get(std::string_view key, bool& out) {
  const toml::value* v = find(key);
  if (v == nullptr) return;
  if (!v->is_boolean()) fail(*v, key, "expected true or false");
  out = v->as_boolean();
}

void TomlTable::get(std::string_view key, std::vector<std::string>& out) {
  const toml::value* v = find(key);
  if (v == nullptr) return;
  if (!v->is_array()) fail(*v, key, "expected an array of strings");
  out.clear();
  for (const auto& item : v->as_array()) {
    if (!item.is_string()) fail(item, key, "expected an array of strings");
    out.push_back(item.as_string().str);
  }
}

void TomlTable::get(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max) {
  const toml::value* v = find(key);
  if (v == nullptr) return;
  if (!v->is_integer()) fail(*v, key, "expected an integer");
  const std::int64_t n = v->as_integer();
  if (n < min || n > max) {
    fail(*v, key,
         "value " + std::to_string(n) + " is out of range [" + std::to_string(min) + ", " +
             std::to_string(max) + "]");
  }
  out = n;
}

void TomlTable::get(std::string_view key, int& out, int min, int max) {
  std::int64_t wide = out;
  get(key, wide, min, max);
  out = static_cast<int>(wide);
}

void TomlTable::get(std::string_view key, double& out, double min, double max) {
  const toml::value* v = find(key);
  if (v == nullptr) return;
  double n = 0;
  if (v->is_floating()) {
    n = v->as_floating();
  } else if (v->is_integer()) {
    n = static_cast<double>(v->as_integer());
  } else {
    fail(*v, key, "expected a number");
  }
  if (n < min || n > max) {
    fail(*v, key,
         "value " + std::to_string(n) + " is out of range [" + std::to_string(min) + ", " +
             std::to_string(max) + "]");
  }
  out = n;
}

int TomlTable::get_choice(std::string_view key, std::span<const std::string_view> choices) {
  const toml::value* v = find(key);
  if (v == nullptr) return -1;
  std::string list;
  for (std::string_view c : choices) list += (list.empty() ? "\"" : ", \"") + std::string(c) + "\"";
  if (!v->is_string()) fail(*v, key, "expected one of " + list);
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (v->as_string().str == choices[i]) return static_cast<int>(i);
  }
  fail(*v, key, "\"" + v->as_string().str + "\" is not one of " + list);
}

void TomlTable::reject_unknown_keys() const {
  for (const auto& [key, v] : value_.as_table()) {
    if (used_.count(key) == 0) fail(v, key, "unknown key");
  }
}

}  // namespace pgmux::pooler
