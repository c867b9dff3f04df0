// Integration test runner: creates a scratch directory (mkdtemp, like mktemp -d), starts the
// PostgreSQL cluster once, runs the doctest cases against it and tears everything down on the
// way out, whether the tests passed or not. Scratch files (pgmux configs and logs) are kept
// when a test failed, and their location is printed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "pg_cluster.hpp"
#include "test_env.hpp"

namespace pgmux::it {

namespace {

TestEnv* current_env = nullptr;  // set by main() for the duration of ctx.run()

// mkdtemp'd directory removed on destruction unless keep() was called.
class ScratchDir {
 public:
  ScratchDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "pgmux-it.XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::system_error(errno, std::generic_category());
    path_ = templ;
  }
  ~ScratchDir() {
    if (keep_) {
      std::cerr << "pgmux integration tests: logs and configs kept in " << path_ << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  void keep() { keep_ = true; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

// Makes `env` reachable through test_env() while it lives.
class EnvRegistration {
 public:
  explicit EnvRegistration(TestEnv& env) { current_env = &env; }
  ~EnvRegistration() { current_env = nullptr; }
  EnvRegistration(const EnvRegistration&) = delete;
  EnvRegistration& operator=(const EnvRegistration&) = delete;
};

}  // namespace

TestEnv& test_env() {
  if (current_env == nullptr) throw std::logic_error("test_env() used outside main()'s test run");
  return *current_env;
}

}  // namespace pgmux::it

int main(int argc, char** argv) {
  using namespace pgmux::it;
  doctest::Context ctx(argc, argv);
  if (ctx.shouldExit()) return ctx.run();  // --help, --list-test-cases, …
  std::signal(SIGPIPE, SIG_IGN);

  int rc = 1;
  try {
    ScratchDir scratch;
    {
      std::cerr << "pgmux integration tests: starting PostgreSQL in " << scratch.path()
                << "/cluster\n";
      PgCluster cluster(scratch.path() / "cluster");
      TestEnv env(cluster, scratch.path());
      EnvRegistration registration(env);
      rc = ctx.run();
    }  // cluster destroyed here, before the scratch directory goes
    if (rc != 0) scratch.keep();
  } catch (const std::exception& e) {
    std::cerr << "pgmux integration tests: setup failed: " << e.what() << "\n";
    return 1;
  }
  return rc;
}
