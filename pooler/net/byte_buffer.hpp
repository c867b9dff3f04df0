// A receive buffer that holds memory only while it holds unread bytes. Its block is borrowed
// from the worker's BufferPool when bytes arrive and given back when drained; it grows only
// as bytes are received (by doubling, never to a length a peer merely declared), and a block
// that grew past the standard size is freed when drained.
#pragma once

#include <cstddef>
#include <string_view>

#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

class BufferPool;

class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(BufferPool* pool) : pool_(pool) {}
  ~ByteBuffer() { release(); }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  [[nodiscard]] std::string_view unread() const { return {data_ + start_, end_ - start_}; }
  [[nodiscard]] const char* front() const { return data_ + start_; }
  [[nodiscard]] std::size_t size() const { return end_ - start_; }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }
  void consume(std::size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  // Makes room for at least `n` more bytes after the unread ones: borrows a block when none
  // is held, moves unread bytes to the front, and grows (doubling) only when the unread bytes
  // themselves fill the block.
  void reserve_tail(std::size_t n);
  // Where the next read goes; `commit` counts what it wrote.
  [[nodiscard]] asio::mutable_buffer tail() { return {data_ + end_, capacity_ - end_}; }
  void commit(std::size_t n) { end_ += n; }
  // Appends bytes (tests, and callers that copy in what they already hold).
  void append(std::string_view bytes);
  // Gives the block back when nothing unread is left; a no-op otherwise.
  void release_if_drained() {
    if (start_ == end_) release();
  }
  // Drops what is unread and gives the block back (release() leaves the buffer empty).
  void discard() { release(); }
  // The pool blocks are borrowed from (a connection moved to another worker takes its pool).
  void set_pool(BufferPool* pool);

 private:
  void release();

  char* data_ = nullptr;
  std::size_t capacity_ = 0, start_ = 0, end_ = 0;
  BufferPool* pool_ = nullptr;  // null: plain malloc (tests)
};

}  // namespace pgmux::pooler
