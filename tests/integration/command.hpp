// Runs an external program (psql, pgbench, pg-cluster.sh) with a bounded wait and captures its
// exit status, stdout and stderr.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace pgmux::it {

struct CommandResult {
  int exit_code = -1;      // the exit status, or -1 when killed by a signal or timed out
  int term_signal = 0;     // the signal that ended it, if any
  bool timed_out = false;  // killed because it outlived the bound
  std::string out, err;

  // One line describing the run, for failure messages.
  [[nodiscard]] std::string describe() const;
};

struct CommandSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value" entries added to (or replacing) the environment
  std::string input;             // written to the program's stdin, which is then closed
  std::chrono::milliseconds timeout{60000};
};

// Spawns argv[0] (searched in PATH when it has no '/'), waits at most spec.timeout (then kills
// the whole process group with SIGKILL) and returns what it printed. Throws std::runtime_error
// when the program cannot be started at all.
[[nodiscard]] CommandResult run_command(const CommandSpec& spec);

// The environment of this process with `extra` entries added or replacing same-named ones.
[[nodiscard]] std::vector<std::string> environment_with(const std::vector<std::string>& extra);

}  // namespace pgmux::it
