// Fuzz target: the frame reader and the streaming scanner over arbitrary bytes. A frame the
// reader calls complete lies inside the input; the scanner never forwards more than it was
// given, and fed the same stream in two chunks it forwards the same bytes as in one.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/frame_reader.hpp"
#include "protocol/frame_scanner.hpp"

namespace pr = pgmux::protocol;

namespace {

struct Inspector {
  std::size_t frames = 0;
  bool needs_body(char tag) const { return tag == 'Q' || tag == 'Z' || tag == 'E'; }
  bool head_only(char tag) const { return tag == 'B'; }
  bool on_frame(char, std::string_view body, std::size_t length) {
    if (body.size() > length) std::abort();
    ++frames;
    return true;
  }
};

void check(bool ok) {
  if (!ok) std::abort();
}

// Scans `data` split at `split`; returns the bytes forwarded before an error or the end.
std::string scan_in_two(std::string_view data, std::size_t split) {
  pr::FrameScanner scanner(4096);
  Inspector inspector;
  std::string buffer, forwarded;
  for (std::string_view part : {data.substr(0, split), data.substr(split)}) {
    buffer.append(part);
    const pr::ScanResult r = scanner.scan(buffer, inspector);
    check(r.forwardable <= buffer.size());
    forwarded.append(buffer, 0, r.forwardable);
    buffer.erase(0, r.forwardable);
    if (r.error != pr::FrameError::none) break;
  }
  return forwarded;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  const pr::FrameReader reader(pr::kMaxStartupPacketBody);
  for (const pr::FrameResult& r : {reader.parse_untagged(data), reader.parse_tagged(data)}) {
    if (r.status == pr::FrameStatus::complete) {
      check(r.frame.wire_size <= data.size());
      check(r.frame.body.size() <= pr::kMaxStartupPacketBody);
      check(r.frame.body.data() >= data.data());
      check(r.frame.body.data() + r.frame.body.size() <= data.data() + data.size());
    }
  }
  const std::string whole = scan_in_two(data, data.size());
  const std::string split = scan_in_two(data, data.size() / 2);
  // Split delivery can only hold back more (a frame's head arriving later), never forward
  // different bytes.
  check(whole.compare(0, split.size(), split) == 0 || split.compare(0, whole.size(), whole) == 0);
  return 0;
}
