// Strict base64 (RFC 4648, padded): SCRAM's encoding of nonces, salts, keys and proofs.
#include "protocol/base64.hpp"

#include <algorithm>
#include <cstdint>

namespace pgmux::protocol {

namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  auto pos = kBase64Alphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

}  // namespace

std::string base64_encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < raw.size(); i += 3) {
    std::size_t n = std::min<std::size_t>(3, raw.size() - i);
    std::uint32_t block = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      block = (block << 8) | (j < n ? static_cast<std::uint8_t>(raw[i + j]) : 0u);
    }
    for (std::size_t j = 0; j < 4; ++j) {
      out += j <= n ? kBase64Alphabet[(block >> (18 - 6 * j)) & 0x3f] : '=';
    }
  }
  return out;
}

boost::system::result<std::string> base64_decode(std::string_view text) {
  const auto malformed = boost::system::errc::make_error_code(boost::system::errc::protocol_error);
  if (text.size() % 4 != 0) return malformed;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last_block = i + 4 == text.size();
    std::uint32_t block = 0;
    int padding = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      char c = text[i + j];
      int value = 0;
      if (c == '=' && last_block && j >= 2) {
        ++padding;
      } else if (padding > 0 || (value = base64_value(c)) < 0) {
        return malformed;
      }
      block = (block << 6) | static_cast<std::uint32_t>(value);
    }
    for (int j = 0; j < 3 - padding; ++j) out += static_cast<char>((block >> (16 - 8 * j)) & 0xff);
  }
  return out;
}

}  // namespace pgmux::protocol
