// Byte-level tests of the incremental frame reader.
#include <doctest/doctest.h>

#include "protocol/frame_reader.hpp"
#include "wire.hpp"

using namespace std::string_literals;

using namespace pgmux::protocol;
using pgmux::test::be32;
using pgmux::test::frame;

TEST_CASE("a whole tagged frame is returned with its body and wire size") {
  FrameReader r;
  const std::string bytes = frame('Q', "select 1\0"s.substr(0, 9));
  const auto res = r.parse_tagged(bytes);
  REQUIRE(res.status == FrameStatus::complete);
  CHECK(res.frame.tag == 'Q');
  CHECK(res.frame.body == std::string_view("select 1\0", 9));
  CHECK(res.frame.wire_size == bytes.size());
}

TEST_CASE("a partial frame asks for more bytes at every split point, then completes") {
  FrameReader r;
  const std::string bytes = frame('D', std::string(100, 'x'));
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CAPTURE(cut);
    const auto res = r.parse_tagged(std::string_view(bytes).substr(0, cut));
    CHECK(res.status == FrameStatus::need_more);
    if (cut >= kTaggedHeaderSize) CHECK(res.needed == bytes.size());
  }
  CHECK(r.parse_tagged(bytes).status == FrameStatus::complete);
}

TEST_CASE("several frames in one buffer are read one after another") {
  FrameReader r;
  const std::string bytes = frame('P', "a") + frame('B', "bc") + frame('S', "");
  std::string_view rest = bytes;
  std::string tags;
  while (!rest.empty()) {
    const auto res = r.parse_tagged(rest);
    REQUIRE(res.status == FrameStatus::complete);
    tags.push_back(res.frame.tag);
    rest.remove_prefix(res.frame.wire_size);
  }
  CHECK(tags == "PBS");
}

TEST_CASE("a length smaller than the length word itself is rejected") {
  FrameReader r;
  for (std::uint32_t len : {0U, 1U, 3U}) {
    CAPTURE(len);
    const auto res = r.parse_tagged("Q" + be32(len));
    CHECK(res.status == FrameStatus::error);
    CHECK(res.error == FrameError::bad_length);
  }
}

TEST_CASE("a frame over the configured maximum is rejected before its body arrives") {
  FrameReader r(1024);
  CHECK(r.parse_tagged("Q" + be32(1024 + 4)).status == FrameStatus::need_more);
  const auto res = r.parse_tagged("Q" + be32(1024 + 5));
  CHECK(res.status == FrameStatus::error);
  CHECK(res.error == FrameError::too_large);
  // A hostile 0xFFFFFFFF length must not wrap around.
  CHECK(r.parse_tagged("Q" + be32(0xFFFFFFFFU)).error == FrameError::too_large);
}

TEST_CASE("startup-phase frames carry no tag and must be at least 8 bytes") {
  FrameReader r;
  const std::string ssl = be32(8) + be32(80877103);
  const auto res = r.parse_untagged(ssl);
  REQUIRE(res.status == FrameStatus::complete);
  CHECK(res.frame.tag == kUntagged);
  CHECK(res.frame.body.size() == 4);
  CHECK(r.parse_untagged(be32(7) + "abc").error == FrameError::bad_length);
  CHECK(r.parse_untagged(be32(8) + "ab").status == FrameStatus::need_more);
  CHECK(r.parse_untagged(std::string("\0\0", 2)).status == FrameStatus::need_more);
}
