// Client startup parameters: which ones pgmux handles itself, how `options` ("-c name=value")
// expands, and the SET statements that make a pooled server match a client. Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/system/result.hpp>

#include "pooler/pool/server_connection.hpp"

namespace pgmux::pooler {

using ParamList = std::vector<std::pair<std::string, std::string>>;

// The session settings a client asked for at startup: plain parameters plus the expansion of
// `options`, without user/database and protocol-level (_pq_.*) names. Fails with a message
// for options pgmux cannot honour (anything but -c / --name=value).
struct StartupSettings {
  ParamList settings;
  std::string error;                    // non-empty: reject the client with this text
  std::string_view sqlstate = "08P01";  // and this SQLSTATE
};
[[nodiscard]] StartupSettings collect_startup_settings(const ParamList& startup);

// Splits an `options` value the way PostgreSQL does: whitespace separates, backslash escapes.
[[nodiscard]] std::vector<std::string> split_options(std::string_view options);

// The one statement that turns the session settings a server has
// (`applied`: what pgmux set there) into the ones a client wants: set_config for each value
// that differs, set_config(name, NULL) (a reset to the default) for each setting the client
// does not have. Empty when they agree. Names must be GUC-shaped (collect_startup_settings
// refuses others); others are skipped.
[[nodiscard]] std::string build_settings_sync(const ParameterMap& wanted,
                                              const ParameterMap& applied);

// Reads back every setting changed at session level (SET, set_config, startup settings pgmux
// applied): name and value, as the client's settings to carry to its next server.
inline constexpr std::string_view kSessionSettingsQuery =
    "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings "
    "WHERE source = 'session'";

// 'value' with single quotes doubled: a safe SQL string literal.
[[nodiscard]] std::string quote_literal(std::string_view value);

}  // namespace pgmux::pooler
