// Reads the admin console of a pgmux instance: connections, SHOW rows, SHOW POOLS values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgmux_process.hpp"
#include "pq_client.hpp"

namespace pgmux::it {

// A connection to the admin console as the fixtures' admin user (check ok() before use).
inline PgConn admin_console(const PgmuxProcess& px) {
  return PgConn(px.conninfo("admin", "adminpass", "pgmux"));
}

// Every row of an admin console SHOW command, as column name → value.
inline std::vector<std::map<std::string, std::string>> console_rows(const PgmuxProcess& px,
                                                                    const std::string& command) {
  PgConn admin = admin_console(px);
  if (!admin.ok()) throw std::runtime_error("admin console login failed: " + admin.error());
  const PgResult r = admin.exec(command);
  if (r.status() != PGRES_TUPLES_OK) throw std::runtime_error(command + ": " + r.describe());
  std::vector<std::map<std::string, std::string>> rows;
  for (int row = 0; row < r.rows(); ++row) {
    std::map<std::string, std::string> m;
    for (int col = 0; col < r.cols(); ++col) m[PQfname(r.get(), col)] = r.value(row, col);
    rows.push_back(std::move(m));
  }
  return rows;
}

// Column name → value of the row for (database, user) of SHOW POOLS (or another per-pool
// command); nullopt if there is none. Throws std::runtime_error when the console cannot be
// reached or the command fails.
inline std::optional<std::map<std::string, std::string>> pool_row(
    const PgmuxProcess& px, const std::string& database, const std::string& user,
    const std::string& command = "SHOW POOLS") {
  for (auto& row : console_rows(px, command)) {
    if (row["database"] == database && row["user"] == user) return std::move(row);
  }
  return std::nullopt;
}

// Integer value of one SHOW POOLS column for (database, user); -1 when the row is missing.
inline int pool_stat(const PgmuxProcess& px, const std::string& column,
                     const std::string& database = "app", const std::string& user = "app") {
  const auto row = pool_row(px, database, user);
  if (!row || !row->contains(column)) return -1;
  return std::stoi(row->at(column));
}

}  // namespace pgmux::it
