// TestEnv helpers (the instance itself is owned by main()).
#include "test_env.hpp"

namespace pgmux::it {

std::string TestEnv::tool(std::string_view name) const {
  const auto in_pg_bin = cluster_.pg_bin() / name;
  if (std::filesystem::exists(in_pg_bin)) return in_pg_bin.string();
  return "/usr/bin/" + std::string(name);
}

}  // namespace pgmux::it
