// Version strings reported by --version, SHOW VERSION and the console's server_version.
#pragma once

namespace pgmux::pooler {
inline constexpr const char* kVersionString = "pgmux 0.1.0";
// What the admin console reports as server_version, so clients accept its dialect.
inline constexpr const char* kPgCompatVersion = "15.0 (pgmux 0.1.0)";
}  // namespace pgmux::pooler
