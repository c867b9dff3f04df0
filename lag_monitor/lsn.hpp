// PostgreSQL WAL positions ("16/B374D848"): parsing, formatting and distance in bytes. The lag
// monitor compares the primary's current LSN with each replica's replay LSN using these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::lag {

using Lsn = std::uint64_t;

// "X/Y" with X and Y hexadecimal, as pg_lsn prints it; nullopt when malformed.
[[nodiscard]] std::optional<Lsn> parse_lsn(std::string_view text);
[[nodiscard]] std::string format_lsn(Lsn lsn);
// Bytes the replica is behind; 0 when it is at or past the primary's position.
[[nodiscard]] inline std::uint64_t lag_bytes(Lsn primary, Lsn replayed) {
  return primary > replayed ? primary - replayed : 0;
}

}  // namespace pgmux::lag
