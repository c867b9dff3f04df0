#include "pooler/session/idle_carry.hpp"

#include <string_view>

namespace pgmux::pooler {

namespace {

template <class Pairs>
void append_list(std::string& out, const Pairs& pairs) {
  for (const auto& [name, value] : pairs) {
    // Protocol strings hold no NUL; an empty name cannot be a setting.
    out.append(name).push_back('\0');
    out.append(value).push_back('\0');
  }
  out.push_back('\0');
}

// Reads the next list of `lists` from `pos` into `add(name, value)`.
template <class Add>
void read_list(std::string_view lists, std::size_t& pos, Add&& add) {
  while (pos < lists.size()) {
    const std::size_t name_end = lists.find('\0', pos);
    if (name_end == pos) {  // the list's end
      ++pos;
      return;
    }
    const std::size_t value_end = lists.find('\0', name_end + 1);
    add(lists.substr(pos, name_end - pos), lists.substr(name_end + 1, value_end - name_end - 1));
    pos = value_end + 1;
  }
}

}  // namespace

PackedIdleCarry pack(IdleCarry carry) {
  PackedIdleCarry packed{.told_base = carry.told_client.base(),
                         .statements = std::move(carry.statements),
                         .min_lsn = carry.min_lsn,
                         .session_target = carry.session_target};
  append_list(packed.lists, carry.startup_settings);
  append_list(packed.lists, carry.told_client.own());
  append_list(packed.lists, carry.wanted);
  packed.lists.shrink_to_fit();
  return packed;
}

IdleCarry unpack(PackedIdleCarry packed) {
  IdleCarry carry{.statements = std::move(packed.statements),
                  .min_lsn = packed.min_lsn,
                  .session_target = packed.session_target};
  const std::string_view lists = packed.lists;
  std::size_t pos = 0;
  read_list(lists, pos, [&](std::string_view name, std::string_view value) {
    carry.startup_settings.emplace_back(name, value);
  });
  ParameterMap told_own;
  read_list(lists, pos,
            [&](std::string_view name, std::string_view value) { told_own.emplace(name, value); });
  carry.told_client = ReportedParameters(std::move(packed.told_base), std::move(told_own));
  read_list(lists, pos, [&](std::string_view name, std::string_view value) {
    carry.wanted.emplace(name, value);
  });
  return carry;
}

}  // namespace pgmux::pooler
