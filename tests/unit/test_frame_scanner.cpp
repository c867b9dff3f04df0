// Tests of the streaming scanner that drives the relay: what may be forwarded when, and that
// inspected frames are seen whole while bulk frames pass through in pieces.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/frame_scanner.hpp"
#include "wire.hpp"

using namespace pgmux::protocol;
using pgmux::test::be32;
using pgmux::test::frame;

namespace {

struct Recorder {
  std::string inspect = "Z";  // tags whose bodies we need
  char stop_at = 0;           // tag that stops the scan
  std::vector<std::pair<char, std::string>> seen;

  bool needs_body(char tag) const { return inspect.find(tag) != std::string::npos; }
  bool on_frame(char tag, std::string_view body, std::size_t) {
    if (tag == stop_at) return false;
    seen.emplace_back(tag, std::string(body));
    return true;
  }
};

// Feeds `stream` in chunks of `chunk` bytes the way the relay does; returns forwarded bytes.
// `max_held`: how many bytes the scanner may hold back at any time (0: no bound checked).
template <class Inspector>
std::string pump(FrameScanner& s, Inspector& rec, const std::string& stream, std::size_t chunk,
                 std::size_t max_held = 0) {
  std::string forwarded, buf;
  for (std::size_t off = 0; off < stream.size(); off += chunk) {
    buf += stream.substr(off, chunk);
    const auto r = s.scan(buf, rec);
    REQUIRE(r.error == FrameError::none);
    forwarded += buf.substr(0, r.forwardable);
    buf.erase(0, r.forwardable);
    if (max_held > 0) CHECK(buf.size() <= max_held);
  }
  CHECK(buf.empty());
  return forwarded;
}

}  // namespace

TEST_CASE("every byte is forwarded exactly once whatever the chunking") {
  const std::string stream = frame('T', "rowdesc") + frame('D', std::string(5000, 'r')) +
                             frame('C', "SELECT 1") + frame('Z', "I");
  for (std::size_t chunk : {1UL, 2UL, 5UL, 7UL, 64UL, 4096UL, 100000UL}) {
    CAPTURE(chunk);
    FrameScanner s;
    Recorder rec;
    CHECK(pump(s, rec, stream, chunk) == stream);
    REQUIRE(rec.seen.size() == 4);
    CHECK(rec.seen[3] == std::pair<char, std::string>{'Z', "I"});
    CHECK(rec.seen[1].second.empty());  // bulk body was not held for inspection
  }
}

TEST_CASE("a bulk frame is forwarded before its body is complete") {
  FrameScanner s;
  Recorder rec;
  const std::string big = frame('D', std::string(1000, 'x'));
  const auto r = s.scan(std::string_view(big).substr(0, 100), rec);
  CHECK(r.forwardable == 100);
  CHECK(s.mid_frame());
  const auto r2 = s.scan(std::string_view(big).substr(100), rec);
  CHECK(r2.forwardable == big.size() - 100);
  CHECK_FALSE(s.mid_frame());
}

TEST_CASE("an inspected frame is held back until whole") {
  FrameScanner s;
  Recorder rec;
  const std::string bytes = frame('C', "x") + frame('Z', "I");
  const auto r = s.scan(std::string_view(bytes).substr(0, bytes.size() - 1), rec);
  CHECK(r.forwardable == frame('C', "x").size());
  CHECK(rec.seen.size() == 1);
}

TEST_CASE("an incomplete header is never forwarded") {
  FrameScanner s;
  Recorder rec;
  CHECK(s.scan(std::string_view("D\0\0", 3), rec).forwardable == 0);
}

TEST_CASE("the inspector can stop the scan before a frame") {
  FrameScanner s;
  Recorder rec;
  rec.inspect = "X";
  rec.stop_at = 'X';
  const std::string bytes = frame('Q', "a") + frame('X', "") + frame('Q', "b");
  CHECK(s.scan(bytes, rec).forwardable == frame('Q', "a").size());
}

TEST_CASE("bad lengths and oversize inspected frames are errors") {
  FrameScanner s(16);
  Recorder rec;
  CHECK(s.scan("D" + be32(2), rec).error == FrameError::bad_length);
  FrameScanner s2(16);
  const auto r = s2.scan(frame('C', "ok") + "Z" + be32(4 + 17), rec);
  CHECK(r.error == FrameError::too_large);
  CHECK(r.forwardable == frame('C', "ok").size());
  // A bulk frame bigger than the inspection limit is fine: it is streamed.
  FrameScanner s3(16);
  CHECK(s3.scan(frame('D', std::string(100, 'x')), rec).error == FrameError::none);
}

namespace {
// Needs Binds' bodies, but only their heads when they are large.
struct HeadRecorder : Recorder {
  std::vector<std::size_t> lengths;
  bool head_only(char tag) const { return tag == 'B'; }
  bool on_frame(char tag, std::string_view body, std::size_t length) {
    seen.emplace_back(tag, std::string(body));
    lengths.push_back(length);
    return true;
  }
};
}  // namespace

TEST_CASE("a large head-only frame is offered by its head and streams past any size limit") {
  const std::string params(3 * FrameScanner::kMaxHead, 'p');
  const std::string bind = frame('B', std::string("portal\0stmt\0", 12) + params);
  const std::string small = frame('B', std::string("\0s\0", 3) + "xy");
  const std::string stream = bind + small + frame('S', "");
  for (std::size_t chunk : {1000UL, 4096UL, 70000UL, 1000000UL}) {
    CAPTURE(chunk);
    FrameScanner s(FrameScanner::kMaxHead);  // the whole Bind is over the inspection limit
    HeadRecorder rec;
    rec.inspect = "B";
    // Never held whole: at most its head and one chunk are ever held back.
    CHECK(pump(s, rec, stream, chunk, FrameScanner::kMaxHead + chunk) == stream);
    REQUIRE(rec.seen.size() == 3);  // both Binds and the Sync
    CHECK(rec.seen[0].second.size() == FrameScanner::kMaxHead);
    CHECK(rec.seen[0].second.substr(0, 12) == std::string("portal\0stmt\0", 12));
    CHECK(rec.lengths[0] == 12 + params.size());
    CHECK(rec.seen[1].second == std::string("\0s\0xy", 5));  // a small one is seen whole
  }
}

TEST_CASE("a head-only frame longer than PostgreSQL accepts is refused at its header") {
  FrameScanner s(FrameScanner::kMaxHead);
  HeadRecorder rec;
  rec.inspect = "B";
  // What PostgreSQL would still take waits for its head; one byte more is refused at once,
  // rather than waited for.
  const std::string largest = "B" + be32(4 + kMaxPostgresMessageBody) + "portal";
  CHECK(s.scan(largest, rec).error == FrameError::none);
  CHECK(rec.seen.empty());
  const std::string over = "B" + be32(4 + kMaxPostgresMessageBody + 1) + "portal";
  const auto r = s.scan(frame('S', "") + over, rec);
  CHECK(r.error == FrameError::too_large);
  CHECK(r.forwardable == frame('S', "").size());
}
