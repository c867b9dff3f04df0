// Fuzz target: the SCRAM server side and the secret parser with hostile input. The first
// input byte chooses the split between the client-first and client-final messages.
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/scram.hpp"

namespace pr = pgmux::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const std::size_t split = bytes[0] % (data.size() + 1);
  static const pr::ScramSecret secret = pr::make_scram_secret("secret", "0123456789abcdef", 16);
  pr::ScramServer server(secret, "servernonce");
  if (server.handle_client_first(data.substr(0, split))) {
    (void)server.handle_client_final(data.substr(split));
  }
  (void)pr::parse_scram_secret(data);
  (void)pr::base64_decode(data);
  return 0;
}
