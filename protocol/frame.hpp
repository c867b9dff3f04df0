// One protocol frame as seen on the wire, and the error kinds the frame layer reports.
// A frame is a view into a buffer the caller owns: nothing here copies message bodies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgmux::protocol {

// Tag value used for startup-phase messages, which carry no tag byte.
inline constexpr char kUntagged = '\0';
// Length word plus tag byte.
inline constexpr std::size_t kTaggedHeaderSize = 5;
// Default ceiling for one inspected message (PostgreSQL's own limit is 1 GiB).
inline constexpr std::size_t kDefaultMaxMessageSize = 64 * 1024 * 1024;
// PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the body of a startup-phase packet, before login.
inline constexpr std::size_t kMaxStartupPacketBody = 10000;
// The largest message body PostgreSQL accepts at all (PQ_LARGE_MESSAGE_LIMIT, MaxAllocSize - 1):
// longer frames are refused even where pgmux streams a frame through.
inline constexpr std::size_t kMaxPostgresMessageBody = 0x3fffffffU - 1;
// Password, SASLInitialResponse and SASLResponse bodies before login: far above any real
// SCRAM, MD5 or cleartext message, small enough that a client that never finishes one holds
// next to nothing.
inline constexpr std::size_t kMaxAuthMessageBody = 8192;

struct Frame {
  char tag = kUntagged;
  std::string_view body;      // excludes tag and length word
  std::size_t wire_size = 0;  // bytes the whole frame occupies on the wire
};

enum class FrameError : std::uint8_t {
  none,
  bad_length,  // length word smaller than itself
  too_large,   // length over the configured maximum
};

[[nodiscard]] inline const char* describe(FrameError e) {
  switch (e) {
    case FrameError::none:
      return "no error";
    case FrameError::bad_length:
      return "invalid message length";
    case FrameError::too_large:
      return "message exceeds the maximum message size";
  }
  return "unknown frame error";
}

// Reads a big-endian 32-bit integer from 4 bytes.
[[nodiscard]] inline std::uint32_t read_be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

}  // namespace pgmux::protocol
