// Strict base64 (RFC 4648, padded), as SCRAM uses it. Decoding rejects anything else
// (errc::protocol_error): wrong length, characters outside the alphabet, misplaced padding.
#pragma once

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace pgmux::protocol {

[[nodiscard]] std::string base64_encode(std::string_view raw);
[[nodiscard]] boost::system::result<std::string> base64_decode(std::string_view text);

}  // namespace pgmux::protocol
