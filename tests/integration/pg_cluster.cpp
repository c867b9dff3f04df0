// pg-cluster.sh wrapper.
#include "pg_cluster.hpp"

#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>

#include "command.hpp"

namespace pgmux::it {

namespace {

const std::string kScript = std::string(PGMUX_SOURCE_DIR) + "/scripts/pg-cluster.sh";

std::map<std::string, std::string> read_env_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::map<std::string, std::string> vars;
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return vars;
}

}  // namespace

PgCluster::PgCluster(std::filesystem::path dir) : dir_(std::move(dir)) {
  const CommandResult r = run_command(
      {.argv = {"bash", kScript, "start", dir_.string()}, .timeout = std::chrono::seconds(180)});
  if (r.exit_code != 0) {
    // The destructor does not run for a throwing constructor: clean up what was started.
    (void)run_command({.argv = {"bash", kScript, "destroy", dir_.string()},
                       .timeout = std::chrono::seconds(120)});
    throw std::runtime_error("pg-cluster.sh start failed: " + r.describe());
  }
  try {
    auto vars = read_env_file(dir_ / "cluster.env");
    primary_port_ = static_cast<std::uint16_t>(std::stoi(vars.at("PRIMARY_PORT")));
    replica_port_ = static_cast<std::uint16_t>(std::stoi(vars.at("REPLICA_PORT")));
    pg_bin_ = vars.at("PG_BIN");
  } catch (const std::exception& e) {
    (void)run_command({.argv = {"bash", kScript, "destroy", dir_.string()},
                       .timeout = std::chrono::seconds(120)});
    throw std::runtime_error(std::string("bad cluster.env: ") + e.what());
  }
}

PgCluster::~PgCluster() {
  try {
    const CommandResult r = run_command({.argv = {"bash", kScript, "destroy", dir_.string()},
                                         .timeout = std::chrono::seconds(120)});
    if (r.exit_code != 0) std::cerr << "pg-cluster.sh destroy failed: " << r.describe() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "pg-cluster.sh destroy failed: " << e.what() << "\n";
  }
}

void PgCluster::run_script(const std::string& command) const {
  const CommandResult r = run_command(
      {.argv = {"bash", kScript, command, dir_.string()}, .timeout = std::chrono::seconds(90)});
  if (r.exit_code != 0) throw std::runtime_error("pg-cluster.sh " + command + ": " + r.describe());
}

void PgCluster::stop_replica() const {
  run_script("stop-replica");
}
void PgCluster::start_replica() const {
  run_script("start-replica");
}
void PgCluster::promote_replica() const {
  run_script("promote-replica");
}

void PgCluster::demote_primary() const {
  run_script("demote-primary");
}

void PgCluster::stop_primary() const {
  run_script("stop-primary");
}
void PgCluster::start_primary() const {
  run_script("start-primary");
}

}  // namespace pgmux::it
