// Session parameters by name (GUC names are case-insensitive in PostgreSQL).
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace pgmux::pooler {

struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};
using ParameterMap = std::map<std::string, std::string, CaseInsensitiveLess>;

}  // namespace pgmux::pooler
