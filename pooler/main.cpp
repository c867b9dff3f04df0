// pgmux entry point: command-line handling, config loading, logging setup, then the runtime.
#include <cstring>
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "pooler/config/config.hpp"
#include "pooler/config/settings.hpp"
#include "pooler/runtime.hpp"
#include "pooler/version.hpp"

namespace {

constexpr const char* kUsage =
    "Usage: pgmux --config FILE [--check-config]\n"
    "       pgmux --print-settings markdown|toml\n"
    "       pgmux --version | --help\n"
    "\n"
    "  --config FILE    TOML configuration (see etc/pgmux.toml)\n"
    "  --check-config   validate the configuration and exit (0 = valid)\n"
    "  --print-settings every [pgmux], [pool] and [routing] setting with its default and\n"
    "                   meaning, as a Markdown table or as TOML (see scripts/settings-docs.sh)\n"
    "  --version        print the version and exit\n"
    "  --help           print this help and exit\n";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version" || arg == "-V") {
      std::cout << pgmux::pooler::kVersionString << "\n";
      return 0;
    } else if (arg == "--print-settings" && i + 1 < argc) {
      const std::string_view format = argv[++i];
      if (format != "markdown" && format != "toml") {
        std::cerr << "pgmux: --print-settings takes markdown or toml\n";
        return 2;
      }
      std::cout << (format == "markdown" ? pgmux::pooler::settings_markdown()
                                         : pgmux::pooler::settings_toml());
      return 0;
    } else if (arg == "--check-config") {
      check_only = true;
    } else if ((arg == "--config" || arg == "-c") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = std::string(arg.substr(9));
    } else {
      std::cerr << "pgmux: unknown argument \"" << arg << "\"\n" << kUsage;
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "pgmux: --config FILE is required\n" << kUsage;
    return 2;
  }
  std::shared_ptr<const pgmux::pooler::Config> config;
  try {
    config = pgmux::pooler::load_config(config_path);
  } catch (const pgmux::pooler::ConfigError& e) {
    std::cerr << "pgmux: configuration error: " << e.what() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << "pgmux: configuration " << config_path << " is valid (" << config->databases.size()
              << " database(s), " << config->users.size() << " user(s))\n";
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(config->general.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");
  std::unique_ptr<pgmux::pooler::Runtime> runtime;
  try {
    runtime = std::make_unique<pgmux::pooler::Runtime>(config);
  } catch (const std::exception& e) {
    std::cerr << "pgmux: cannot start: " << e.what() << "\n";
    return 1;
  }
  return runtime->run();
}
