// The admin console: the virtual database "pgmux" (alias "pgbouncer") that operators query with
// psql over the simple query protocol. Answers SHOW commands from live pool state.
#pragma once

#include <string>

#include "pooler/config/config.hpp"
#include "pooler/net/asio_util.hpp"
#include "pooler/net/framed_socket.hpp"

namespace pgmux::pooler {

class Runtime;

// Serves console commands until the client leaves. The user is already authenticated.
awaitable<void> run_admin_console(Runtime& rt, FramedSocket& client, const Config& config,
                                  const std::string& user, const std::string& label);

}  // namespace pgmux::pooler
