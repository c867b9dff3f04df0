// Frame boundary detection for startup-phase and regular protocol messages.
#include "protocol/frame_reader.hpp"

namespace pgmux::protocol {

FrameResult FrameReader::parse_untagged(std::string_view data) const {
  if (data.size() < 4) return {};
  const std::uint32_t length = read_be32(data.data());
  // The smallest startup-phase message (SSLRequest) is 8 bytes: length + request code.
  if (length < 8) return {.status = FrameStatus::error, .error = FrameError::bad_length};
  return finish(kUntagged, data, 0, length);
}

FrameResult FrameReader::parse_tagged(std::string_view data) const {
  if (data.size() < kTaggedHeaderSize) return {};
  const std::uint32_t length = read_be32(data.data() + 1);
  if (length < 4) return {.status = FrameStatus::error, .error = FrameError::bad_length};
  return finish(data[0], data, 1, length);
}

FrameResult FrameReader::finish(char tag, std::string_view data, std::size_t header,
                                std::uint32_t length) const {
  if (length - 4 > max_message_size_) {
    return {.status = FrameStatus::error, .error = FrameError::too_large};
  }
  const std::size_t total = header + length;
  if (data.size() < total) return {.status = FrameStatus::need_more, .needed = total};
  return {.status = FrameStatus::complete,
          .frame = {.tag = tag, .body = data.substr(header + 4, length - 4), .wire_size = total}};
}

}  // namespace pgmux::protocol
