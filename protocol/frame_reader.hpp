// Incremental frame reader: given the bytes received so far, says whether a whole frame is at
// the front ("complete"), more bytes are needed, or the stream is invalid. Sans-I/O: the caller
// owns the buffer, reads the socket, and drops `consumed` bytes after handling a frame.
#pragma once

#include "protocol/frame.hpp"

namespace pgmux::protocol {

enum class FrameStatus : std::uint8_t { complete, need_more, error };

struct FrameResult {
  FrameStatus status = FrameStatus::need_more;
  Frame frame;
  FrameError error = FrameError::none;
  // When need_more: how many bytes the whole frame needs, if the header is known (else 0).
  std::size_t needed = 0;
};

class FrameReader {
 public:
  explicit FrameReader(std::size_t max_message_size = kDefaultMaxMessageSize)
      : max_message_size_(max_message_size) {}

  // Startup-phase frame (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest): no tag.
  [[nodiscard]] FrameResult parse_untagged(std::string_view data) const;
  // Regular frame: tag byte, then a length that counts itself.
  [[nodiscard]] FrameResult parse_tagged(std::string_view data) const;

  [[nodiscard]] std::size_t max_message_size() const { return max_message_size_; }

 private:
  FrameResult finish(char tag, std::string_view data, std::size_t header,
                     std::uint32_t length) const;

  std::size_t max_message_size_;
};

}  // namespace pgmux::protocol
