// Streaming frame scanner for the forwarding hot path. It walks frame headers in a byte stream
// and tells the caller how many leading bytes may be forwarded now. Frames whose bodies the
// inspector does not need are forwarded as they arrive, even partially (a 1 GB DataRow never
// sits in memory); a frame whose body the inspector needs is held back until it is whole.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#include "protocol/frame.hpp"

namespace pgmux::protocol {

struct ScanResult {
  std::size_t forwardable = 0;  // bytes at the front of the buffer that can be sent on now
  FrameError error = FrameError::none;
};

// Inspector concept:
//   bool needs_body(char tag)           — hold the frame back until its body is complete?
//   bool on_frame(char tag, std::string_view body, std::size_t length)
//        called once per frame, when the header is seen (body empty) or, for needs_body
//        frames, when the body is complete. `length` is the body length. Returning false
//        stops the scan before this frame: it is not counted as forwardable, and the next
//        scan() call (if any) offers it again.
//   optional: bool head_only(char tag)  — for a needs_body frame: when its body is larger than
//        kMaxHead, offer only its first kMaxHead bytes (`body` shorter than `length`) and
//        forward the rest as it arrives, like a frame whose body is not needed (up to
//        PostgreSQL's own limit, kMaxPostgresMessageBody: longer is too_large). For messages
//        whose interesting part is at the front (Bind: portal and statement names) and whose
//        size a client chooses (its parameters).
class FrameScanner {
 public:
  static constexpr std::size_t kMaxHead = 64 * 1024;

  explicit FrameScanner(std::size_t max_inspected_size = kDefaultMaxMessageSize)
      : max_inspected_size_(max_inspected_size) {}

  template <class Inspector>
  [[nodiscard]] ScanResult scan(std::string_view buf, Inspector& inspector) {
    std::size_t pos = 0;
    if (skip_ > 0) {
      const std::size_t n = skip_ < buf.size() ? skip_ : buf.size();
      skip_ -= n;
      pos = n;
    }
    while (pos < buf.size()) {
      if (buf.size() - pos < kTaggedHeaderSize) break;
      const char tag = buf[pos];
      const std::uint32_t length = read_be32(buf.data() + pos + 1);
      if (length < 4) return {.forwardable = pos, .error = FrameError::bad_length};
      const std::size_t body_len = length - 4;
      if (inspector.needs_body(tag)) {
        if constexpr (requires { inspector.head_only(tag); }) {
          const std::size_t head_limit = std::min(kMaxHead, max_inspected_size_);
          if (body_len > head_limit && inspector.head_only(tag)) {
            if (body_len > kMaxPostgresMessageBody) {
              return {.forwardable = pos, .error = FrameError::too_large};
            }
            if (buf.size() - pos - kTaggedHeaderSize < head_limit) break;  // hold the head
            const std::string_view head = buf.substr(pos + kTaggedHeaderSize, head_limit);
            if (!inspector.on_frame(tag, head, body_len)) break;
            pos = forward_body(buf, pos, body_len);
            continue;
          }
        }
        if (body_len > max_inspected_size_) {
          return {.forwardable = pos, .error = FrameError::too_large};
        }
        if (buf.size() - pos - kTaggedHeaderSize < body_len) break;  // hold back until whole
        if (!inspector.on_frame(tag, buf.substr(pos + kTaggedHeaderSize, body_len), body_len)) {
          break;
        }
        pos += kTaggedHeaderSize + body_len;
        continue;
      }
      if (!inspector.on_frame(tag, std::string_view{}, body_len)) break;
      pos = forward_body(buf, pos, body_len);
    }
    return {.forwardable = pos};
  }

  // True when the scanner stopped mid-way through a forwarded frame's body.
  [[nodiscard]] bool mid_frame() const { return skip_ > 0; }

 private:
  // Forwards the frame at `pos` as far as it has arrived; the rest is skipped as it comes.
  std::size_t forward_body(std::string_view buf, std::size_t pos, std::size_t body_len) {
    const std::size_t available = buf.size() - pos - kTaggedHeaderSize;
    if (available >= body_len) return pos + kTaggedHeaderSize + body_len;
    skip_ = body_len - available;
    return buf.size();
  }

  std::size_t max_inspected_size_;
  std::size_t skip_ = 0;  // body bytes of a forwarded frame not yet seen
};

}  // namespace pgmux::protocol
