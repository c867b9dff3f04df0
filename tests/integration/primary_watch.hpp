// Watching the primary directly (not through pgmux): how many server connections a role holds
// there, which is what pool limits promise.
#pragma once

#include <string>

#include "helpers.hpp"
#include "pq_client.hpp"
#include "test_env.hpp"

namespace pgmux::it {

// A direct connection to the primary as the admin role.
inline PgConn direct_primary(const std::string& user = "admin",
                             const std::string& password = "adminpass") {
  return PgConn("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=" + user + " password=" + password +
                " dbname=app sslmode=disable connect_timeout=10");
}

// Client backends of `role` on the primary right now.
inline int server_connections(PgConn& watcher, const std::string& role = "app") {
  return std::stoi(watcher.query_value("SELECT count(*) FROM pg_stat_activity WHERE usename = '" +
                                       role + "' AND backend_type = 'client backend'"));
}

// Waits (bounded) until `role` holds exactly `n` server connections on the primary.
inline bool wait_for_server_connections(PgConn& watcher, int n, milliseconds bound,
                                        const std::string& role = "app") {
  return wait_until([&] { return server_connections(watcher, role) == n; }, bound);
}

}  // namespace pgmux::it
