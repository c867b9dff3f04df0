// The PostgreSQL 15 primary + streaming replica the tests run against, started once per test
// run with scripts/pg-cluster.sh and destroyed when this object goes away.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace pgmux::it {

class PgCluster {
 public:
  // Runs `pg-cluster.sh start DIR` (DIR must not exist yet or be empty) and reads
  // DIR/cluster.env. Throws std::runtime_error with the script's output on failure.
  explicit PgCluster(std::filesystem::path dir);
  ~PgCluster();  // `pg-cluster.sh destroy DIR`
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  [[nodiscard]] std::uint16_t primary_port() const { return primary_port_; }
  [[nodiscard]] std::uint16_t replica_port() const { return replica_port_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  [[nodiscard]] const std::filesystem::path& pg_bin() const { return pg_bin_; }
  // Failover tests: stop the replica (pg_ctl stop -m fast), and start it again until it
  // streams. Throw std::runtime_error on failure.
  void stop_replica() const;
  void start_replica() const;
  void stop_primary() const;
  void start_primary() const;    // …and waits until the replica streams again
  void promote_replica() const;  // pg_ctl promote: a second primary, on a new timeline
  // The primary restarted as a standby of nothing: in recovery, read-only, for good.
  void demote_primary() const;

 private:
  void run_script(const std::string& command) const;  // pg-cluster.sh COMMAND DIR

  std::filesystem::path dir_, pg_bin_;
  std::uint16_t primary_port_ = 0, replica_port_ = 0;
};

}  // namespace pgmux::it
