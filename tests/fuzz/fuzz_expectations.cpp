// Fuzz target: the expectation queue driven by an arbitrary interleaving of client frames and
// server answers. It may call answers unexpected, but never crashes, and after a Sync has been
// answered with nothing else sent it is quiescent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "pooler/session/expectations.hpp"

using namespace pgmux::pooler;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  static constexpr char kClient[] = {'P', 'B', 'D', 'E', 'H', 'S', 'Q', 'C', 'F', 'd'};
  static constexpr char kServer[] = {'1', '3', 'E', 'Z'};
  Expectations x;
  std::string why;
  std::vector<std::string> unprepared;
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint8_t b = bytes[i];
    if (b & 0x80) {
      switch (kServer[b % sizeof kServer]) {
        case '1':
          (void)x.parse_complete(why);
          break;
        case '3':
          (void)x.close_complete(why);
          break;
        case 'E':
          (void)x.error(unprepared);
          break;
        default: {
          Expect ended{Expect::sync};
          (void)x.ready_for_query(ended, why);
        }
      }
    } else if (b & 0x40) {
      x.push({(b & 1) ? Expect::parse : Expect::close, true, (b & 2) != 0, "s"});
    } else {
      (void)x.client_frame(kClient[b % sizeof kClient]);
    }
  }
  return 0;
}
