// SHOW CLIENTS, SERVERS, PINNED, PREPARED and MEM: the connections pgmux holds and what they
// hold, read from the client and server registries (admin_views.cpp dispatches to them).
#pragma once

#include <string>

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

class Runtime;

void show_clients(Runtime& rt, std::string& out);
void show_pinned(Runtime& rt, std::string& out);
void show_servers(Runtime& rt, std::string& out);
void show_prepared(Runtime& rt, std::string& out);
void show_mem(Runtime& rt, const Config& config, std::string& out);

}  // namespace pgmux::pooler
