// PostgreSQL's md5 password scheme: the stored "md5<hex>" hash and the salted challenge reply.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgmux::protocol {

// "md5" + hex(md5(password + user)): what pg_authid stores for md5 users.
[[nodiscard]] std::string md5_password_hash(std::string_view user, std::string_view password);
// The reply to AuthenticationMD5Password: "md5" + hex(md5(hex_part_of_stored_hash + salt)).
// `stored_hash` is the value md5_password_hash() returns (with its "md5" prefix).
[[nodiscard]] std::string md5_salted_response(std::string_view stored_hash,
                                              const std::array<std::uint8_t, 4>& salt);

}  // namespace pgmux::protocol
