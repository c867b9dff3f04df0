// Watching the servers directly (not through pgmux): how many server connections a role holds
// on the primary, which is what pool limits promise, and where a statement ran.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "helpers.hpp"
#include "pq_client.hpp"
#include "test_env.hpp"

namespace pgmux::it {

// A direct connection to the primary as the admin role.
inline PgConn direct_server(std::uint16_t port, const std::string& user = "admin",
                            const std::string& password = "adminpass") {
  return PgConn("host=127.0.0.1 port=" + std::to_string(port) + " dbname=app user=" + user +
                " password=" + password + " sslmode=disable gssencmode=disable");
}
inline PgConn direct_primary(const std::string& user = "admin",
                             const std::string& password = "adminpass") {
  return PgConn("host=127.0.0.1 port=" + std::to_string(test_env().cluster().primary_port()) +
                " user=" + user + " password=" + password +
                " dbname=app sslmode=disable connect_timeout=10");
}

// A direct connection to the replica as the admin role (pause replay, read its position).
inline PgConn direct_replica() {
  return PgConn("host=127.0.0.1 port=" + std::to_string(test_env().cluster().replica_port()) +
                " user=admin password=adminpass dbname=app sslmode=disable connect_timeout=10");
}

// Pauses WAL replay on the replica while alive (and resumes it when destroyed).
class ReplayPause {
 public:
  ReplayPause() : c_(direct_replica()) {
    REQUIRE_MESSAGE(c_.ok(), c_.error());
    c_.run("SELECT pg_wal_replay_pause()");
  }
  ~ReplayPause() { resume(); }
  void resume() {
    if (paused_) c_.run("SELECT pg_wal_replay_resume()");
    paused_ = false;
  }

 private:
  PgConn c_;
  bool paused_ = true;
};

// An empty table on the primary that `user` may use: created if missing, else truncated.
inline void empty_table(const std::string& table, const std::string& columns,
                        const std::string& user = "app") {
  PgConn p = direct_primary();
  REQUIRE_MESSAGE(p.ok(), p.error());
  p.run("CREATE TABLE IF NOT EXISTS " + table + " (" + columns + ")");
  p.run("GRANT ALL ON " + table + " TO " + user);
  p.run("TRUNCATE " + table);
}

// Where a statement ran through pgmux: "replica" or "primary" from its first column, which
// must be pg_is_in_recovery(); "error: …" when it failed.
inline std::string where(PgConn& c, const std::string& sql = "SELECT pg_is_in_recovery()") {
  const PgResult r = c.exec(sql);
  if (!r.ok() || r.rows() < 1) return "error: " + r.describe();
  return r.value(0, 0) == "t" ? "replica" : "primary";
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
