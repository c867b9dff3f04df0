// server_lifetime_ms with jitter, kept free of Asio so it is cheap to test.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgmux::pooler {

// A connection's actual lifetime: `lifetime` shortened by up to a fifth, `u` in [0, 1), so the
// connections a burst opened together do not all reconnect in the same second. Never longer
// than configured: operators set server_lifetime_ms below limits imposed elsewhere (a proxy's
// idle cut-off, credential rotation).
[[nodiscard]] inline std::chrono::milliseconds jittered_lifetime(std::chrono::milliseconds lifetime,
                                                                 double u) {
  const auto cut = static_cast<std::int64_t>(static_cast<double>(lifetime.count()) * 0.2 * u);
  return std::chrono::milliseconds(lifetime.count() - cut);
}

}  // namespace pgmux::pooler
