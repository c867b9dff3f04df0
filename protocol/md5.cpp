// PostgreSQL's md5 authentication: the "md5<hex>" hash stored in pg_authid and the reply to an
// AuthenticationMD5Password challenge. OpenSSL's EVP interface computes the MD5 digests.
#include "protocol/md5.hpp"

#include <stdexcept>

#include <openssl/evp.h>

namespace pgmux::protocol {
namespace {

constexpr std::string_view kMd5Prefix = "md5";

// Lower-case hex of md5(data), 32 characters.
std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1) {
    throw std::runtime_error("MD5 digest failed");
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

}  // namespace

std::string md5_password_hash(std::string_view user, std::string_view password) {
  std::string input(password);
  input += user;
  return std::string(kMd5Prefix) + md5_hex(input);
}

std::string md5_salted_response(std::string_view stored_hash,
                                const std::array<std::uint8_t, 4>& salt) {
  if (stored_hash.starts_with(kMd5Prefix)) stored_hash.remove_prefix(kMd5Prefix.size());
  std::string input(stored_hash);
  input.append(reinterpret_cast<const char*>(salt.data()), salt.size());
  return std::string(kMd5Prefix) + md5_hex(input);
}

}  // namespace pgmux::protocol
