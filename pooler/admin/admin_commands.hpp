// The admin console's control commands: PAUSE/RESUME, SUSPEND, KILL, RECONNECT, WAIT_CLOSE,
// RELOAD, SET, SHUTDOWN, DISABLE/ENABLE, BAN/UNBAN, KILL_CLIENT (admin_users only).
#pragma once

#include <string>
#include <string_view>

#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

class Runtime;

struct CommandResult {
  bool handled = false;     // `cmd` was a control command (its answer is in `out`)
  bool exit_after = false;  // SHUTDOWN: exit once the answer is written
};

// Runs `cmd` (upper-cased, blanks collapsed, no ';'; `sql` as typed, for names and values),
// appending CommandComplete or an ErrorResponse. Commands that wait (PAUSE, SUSPEND,
// WAIT_CLOSE) return when what they wait for is done.
awaitable<CommandResult> run_command(Runtime& rt, const Config& config, const std::string& cmd,
                                     std::string_view sql, std::string& out);

}  // namespace pgmux::pooler
