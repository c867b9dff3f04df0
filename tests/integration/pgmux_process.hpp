// A pgmux instance run as a child process with a generated TOML config on a free port; its
// stdout and stderr go to a log file whose tail is shown when a check fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "test_env.hpp"

namespace pgmux::it {

struct PgmuxOptions {
  std::string name = "pgmux";    // stem of the config and log file names
  std::uint16_t port = 0;        // listen_port; 0 = a free one (several processes: so_reuseport)
  std::vector<std::string> env;  // NAME=VALUE added to the process's environment
  int pool_size = 4;             // [databases.app] pool_size
  int workers = 2;               // [pgmux] workers
  int max_client_conn = 1000;
  std::int64_t query_wait_timeout_ms = 1000;
  std::int64_t shutdown_timeout_ms = 5000;
  std::string log_level = "info";
  std::string mode = "session";  // [pool] mode
  std::string pgmux_toml;        // more [pgmux] lines, e.g. "stats_period_ms = 500"
  std::string pool_toml;         // more [pool] lines, e.g. "pin_session_state = \"error\""
  // [routing] lines. Pooling tests run without read/write routing (the product's default is
  // on), so reads stay on the primary whose pg_stat_activity they watch.
  std::string routing_toml = "read_write_split = \"off\"";
  std::string extra_toml;  // appended verbatim, e.g. more [users.X] tables
  // Replaces the standard [users.*] tables (app, md5user, pwuser, admin) when not empty.
  std::string users_toml;
  // More [databases.app] lines, e.g. "roles = \"auto\"".
  std::string database_toml;
  // The servers pgmux fronts: a test's own cluster (failover tests), else the run's.
  const PgCluster* cluster = nullptr;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back).
[[nodiscard]] std::uint16_t pick_free_port();

class PgmuxProcess {
 public:
  // Writes the config, starts PGMUX_BINARY and waits (≤ 10 s) until it serves connections.
  // Throws std::runtime_error carrying the log when it does not come up.
  PgmuxProcess(TestEnv& env, PgmuxOptions options);
  ~PgmuxProcess();  // stop()
  PgmuxProcess(const PgmuxProcess&) = delete;
  PgmuxProcess& operator=(const PgmuxProcess&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const PgmuxOptions& options() const { return options_; }
  [[nodiscard]] const std::filesystem::path& log_path() const { return log_path_; }
  [[nodiscard]] const std::string& config_text() const { return config_text_; }
  // Replaces the config file on disk (for RELOAD / SIGHUP); the process keeps running.
  void rewrite_config(const std::string& text);

  // libpq connection string for this instance (sslmode/gssencmode disabled unless `extra`
  // overrides them; later keywords win).
  [[nodiscard]] std::string conninfo(const std::string& user, const std::string& password,
                                     const std::string& dbname = "app",
                                     const std::string& extra = "") const;
  // The whole log, or its last `lines` lines with a header naming the file.
  [[nodiscard]] std::string log() const;
  [[nodiscard]] std::string log_tail(int lines = 40) const;
  // How many times `text` occurs in the log so far.
  [[nodiscard]] int count_in_log(const std::string& text) const;
  // Waits (bounded) until the log contains `text`.
  [[nodiscard]] bool wait_for_log(const std::string& text, std::chrono::milliseconds bound) const;

  // Peak resident set size (VmHWM) in kB, from /proc/PID/status; -1 if unavailable.
  [[nodiscard]] long peak_rss_kb() const;
  // Resident set size now (VmRSS) in kB; -1 if unavailable.
  [[nodiscard]] long rss_kb() const;
  // Open file descriptors now (/proc/PID/fd); -1 if unavailable.
  [[nodiscard]] int open_fds() const;
  // "RSS N kB, M fds": what a fault test prints before and after its fault.
  [[nodiscard]] std::string resources() const;

  void send_signal(int sig) const;
  // True while the process has not exited (reaps it when it has).
  [[nodiscard]] bool running();
  // Waits up to `bound` for the process to exit; returns its wait status.
  std::optional<int> wait_exit(std::chrono::milliseconds bound);
  // SIGTERM, then SIGKILL after 8 s; returns the wait status (nullopt if already reaped).
  std::optional<int> stop();

 private:
  bool start_once(std::string& failure);

  TestEnv& env_;
  PgmuxOptions options_;
  std::filesystem::path config_path_, log_path_;
  std::string config_text_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// "exited with status N" / "killed by signal N" for a wait status.
[[nodiscard]] std::string describe_wait_status(int status);

}  // namespace pgmux::it
