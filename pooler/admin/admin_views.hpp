// The admin console's SHOW commands (see admin_views.cpp for the tables).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

class Runtime;

// Appends RowDescription + DataRows + CommandComplete for a table of text values.
void append_table(std::string& out, const std::vector<std::string_view>& columns,
                  const std::vector<std::vector<std::string>>& rows);

// Appends the answer to `cmd` (upper-cased, blanks collapsed, no ';'): false when it is not a
// SHOW command the console knows.
bool append_show(Runtime& rt, const Config& config, const std::string& cmd, std::string& out);

}  // namespace pgmux::pooler
