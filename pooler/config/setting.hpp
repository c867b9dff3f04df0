// One row of the settings table: a key of [pgmux], [pool] or [routing], bound to the struct
// member that holds it. The row knows how to read the key from TOML (type, range, choices) and
// how to print its value; the member's initialiser stays the one place its default lives.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pooler/config/setting_kind.hpp"
#include "pooler/config/toml_reader.hpp"

namespace pgmux::pooler {

template <class S>
struct Setting {
  std::string_view key;  // in its TOML section
  Applies applies = Applies::at_once;
  std::string_view doc;                            // one line: README, etc/pgmux.toml
  std::int64_t min = 0, max = 0;                   // integer and number kinds
  std::span<const std::string_view> choices = {};  // choice kind: the words, in enum order
  std::string_view console_name = {};              // SHOW CONFIG / SET name, when not key
  std::string_view default_doc = {};               // docs' default column, when not the value
  std::string_view example = {};                   // etc/pgmux.toml: a commented example line
  bool per_database = false;                       // [databases.X] may override it
  SettingKind kind = SettingKind::text;            // set by bind()
  void (*read)(TomlTable&, const Setting&, S&) = nullptr;   // absent key: member untouched
  std::string (*show)(const Setting&, const S&) = nullptr;  // the value as TOML writes it

  [[nodiscard]] std::string_view name() const { return console_name.empty() ? key : console_name; }
};

// The value of a string or a list as TOML writes it.
[[nodiscard]] std::string toml_quote(std::string_view text);
[[nodiscard]] std::string toml_list(const std::vector<std::string>& items);
[[nodiscard]] std::string toml_number(double value);

namespace setting_detail {

template <class>
struct MemberOf;
template <class S, class T>
struct MemberOf<T S::*> {
  using owner = S;
};
template <auto First>
using Owner = typename MemberOf<decltype(First)>::owner;

// The member at the end of a path of member pointers (server_tls, then mode).
template <auto... Path, class S>
auto& member(S& s) {
  return (s.*....*Path);
}

template <class T>
constexpr bool is_integer = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
SettingKind kind_of(bool has_choices) {
  if (has_choices) return SettingKind::choice;
  if constexpr (is_integer<T>) return SettingKind::integer;
  if constexpr (std::is_floating_point_v<T>) return SettingKind::number;
  if constexpr (std::is_same_v<T, bool>) return SettingKind::boolean;
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return SettingKind::list;
  return SettingKind::text;
}

template <class S, class T>
void read_value(TomlTable& t, const Setting<S>& s, T& out) {
  if (!s.choices.empty()) {
    const int i = t.get_choice(s.key, s.choices);
    if (i < 0) return;
    if constexpr (std::is_same_v<T, std::string>) {
      out = std::string(s.choices[static_cast<std::size_t>(i)]);
    } else {
      out = static_cast<T>(i);
    }
  } else if constexpr (is_integer<T>) {
    auto wide = static_cast<std::int64_t>(out);
    t.get(s.key, wide, s.min, s.max);
    out = static_cast<T>(wide);
  } else if constexpr (std::is_floating_point_v<T>) {
    t.get(s.key, out, static_cast<double>(s.min), static_cast<double>(s.max));
  } else if constexpr (!std::is_enum_v<T>) {
    t.get(s.key, out);
  }
}

template <class S, class T>
std::string show_value(const Setting<S>& s, const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return toml_quote(value);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return toml_list(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!s.choices.empty()) return toml_quote(s.choices[value ? 1 : 0]);
    return value ? "true" : "false";
  } else if constexpr (std::is_enum_v<T>) {
    return toml_quote(s.choices[static_cast<std::size_t>(value)]);
  } else if constexpr (std::is_floating_point_v<T>) {
    return toml_number(value);
  } else {
    return std::to_string(value);
  }
}

}  // namespace setting_detail

// A row bound to the member at the end of Path; kind, reader and printer follow its type.
template <auto First, auto... Rest>
Setting<setting_detail::Owner<First>> bind(Setting<setting_detail::Owner<First>> row) {
  using S = setting_detail::Owner<First>;
  using T =
      std::remove_cvref_t<decltype(setting_detail::member<First, Rest...>(std::declval<S&>()))>;
  row.kind = setting_detail::kind_of<T>(!row.choices.empty());
  row.read = [](TomlTable& t, const Setting<S>& s, S& out) {
    setting_detail::read_value(t, s, setting_detail::member<First, Rest...>(out));
  };
  row.show = [](const Setting<S>& s, const S& in) {
    return setting_detail::show_value(s, setting_detail::member<First, Rest...>(in));
  };
  return row;
}

}  // namespace pgmux::pooler
