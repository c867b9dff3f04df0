// Helpers for byte-level tests: build frames by hand, independent of the encoders under test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgmux::test {

inline std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A tagged frame: tag, length (body + 4), body.
inline std::string frame(char tag, std::string_view body) {
  return std::string(1, tag) + be32(static_cast<std::uint32_t>(body.size() + 4)) +
         std::string(body);
}

inline std::string cstr(std::string_view s) {
  return std::string(s) + '\0';
}

}  // namespace pgmux::test
