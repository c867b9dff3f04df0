// SQLSTATE classes (the first two characters) as small indexes, so errors can be counted in a
// fixed array per worker: PostgreSQL's documented classes, then one slot for anything else.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace pgmux::pooler {

inline constexpr std::array<std::string_view, 44> kSqlstateClassCodes = {
    "00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z", "20", "21", "22",
    "23", "24", "25", "26", "27", "28", "2B", "2D", "2F", "34", "38", "39", "3B", "3D", "3F",
    "40", "42", "44", "53", "54", "55", "57", "58", "72", "F0", "HV", "P0", "XX", "??"};
inline constexpr std::size_t kSqlstateClasses = kSqlstateClassCodes.size();  // last: other

[[nodiscard]] constexpr std::size_t sqlstate_class_index(std::string_view sqlstate) {
  if (sqlstate.size() >= 2) {
    const std::string_view cls = sqlstate.substr(0, 2);
    for (std::size_t i = 0; i + 1 < kSqlstateClasses; ++i) {
      if (kSqlstateClassCodes[i] == cls) return i;
    }
  }
  return kSqlstateClasses - 1;
}

}  // namespace pgmux::pooler
