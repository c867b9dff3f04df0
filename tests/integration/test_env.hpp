// What main() owns and hands to the test cases: the cluster and the run's scratch directory.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "pg_cluster.hpp"

namespace pgmux::it {

class TestEnv {
 public:
  TestEnv(const PgCluster& cluster, std::filesystem::path work_dir)
      : cluster_(cluster), work_dir_(std::move(work_dir)) {}

  [[nodiscard]] const PgCluster& cluster() const { return cluster_; }
  [[nodiscard]] const std::filesystem::path& work_dir() const { return work_dir_; }
  // A fresh path stem in the work directory: "<work_dir>/<name>-<n>".
  [[nodiscard]] std::filesystem::path unique_stem(std::string_view name) {
    return work_dir_ / (std::string(name) + "-" + std::to_string(++counter_));
  }
  // psql, pgbench, … from the cluster's PostgreSQL bin directory, else from /usr/bin.
  [[nodiscard]] std::string tool(std::string_view name) const;

 private:
  const PgCluster& cluster_;
  std::filesystem::path work_dir_;
  int counter_ = 0;
};

// The environment of the running test binary; only valid while main() runs the tests.
[[nodiscard]] TestEnv& test_env();

}  // namespace pgmux::it
