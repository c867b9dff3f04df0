// Bounds-checked cursor over a message body. Reads past the end or a missing NUL terminator
// set a sticky failure flag instead of reading out of bounds, so decoders check once at the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "protocol/frame.hpp"

namespace pgmux::protocol {

class BodyReader {
 public:
  explicit BodyReader(std::string_view body) : body_(body) {}

  std::int32_t int32() {
    if (!need(4)) return 0;
    const auto v = static_cast<std::int32_t>(read_be32(body_.data() + pos_));
    pos_ += 4;
    return v;
  }
  std::int16_t int16() {
    if (!need(2)) return 0;
    const auto* u = reinterpret_cast<const unsigned char*>(body_.data() + pos_);
    pos_ += 2;
    return static_cast<std::int16_t>((u[0] << 8) | u[1]);
  }
  char byte() {
    if (!need(1)) return 0;
    return body_[pos_++];
  }
  std::string_view cstring() {
    if (failed_) return {};
    const auto* start = body_.data() + pos_;
    const auto* nul = static_cast<const char*>(std::memchr(start, 0, body_.size() - pos_));
    if (nul == nullptr) {
      failed_ = true;
      return {};
    }
    std::string_view s(start, static_cast<std::size_t>(nul - start));
    pos_ += s.size() + 1;
    return s;
  }
  std::string_view bytes(std::size_t n) {
    if (!need(n)) return {};
    std::string_view s = body_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view rest() {
    std::string_view s = body_.substr(pos_);
    pos_ = body_.size();
    return s;
  }

  [[nodiscard]] bool ok() const { return !failed_; }
  [[nodiscard]] bool at_end() const { return pos_ == body_.size(); }
  [[nodiscard]] std::size_t remaining() const { return body_.size() - pos_; }

 private:
  bool need(std::size_t n) {
    if (failed_ || body_.size() - pos_ < n) {
      failed_ = true;
      return false;
    }
    return true;
  }

  std::string_view body_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace pgmux::protocol
