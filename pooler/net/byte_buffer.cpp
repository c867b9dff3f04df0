// Borrowing, growing and giving back a receive buffer's block.
#include "pooler/net/byte_buffer.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "pooler/net/buffer_pool.hpp"

namespace pgmux::pooler {

namespace {
char* take_block(BufferPool* pool, std::size_t size) {
  if (pool != nullptr) return pool->take(size);
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}
void give_block(BufferPool* pool, char* block, std::size_t size) {
  if (pool != nullptr) {
    pool->give(block, size);
  } else {
    std::free(block);
  }
}
}  // namespace

void ByteBuffer::reserve_tail(std::size_t n) {
  constexpr std::size_t kBlock = BufferPool::kBlockSize;
  if (data_ == nullptr) {
    // A small read (a login message) gets a small block of its own; others a standard one.
    capacity_ = n <= kBlock / 4 ? (n + 63) / 64 * 64 : std::max(n, kBlock);
    data_ = take_block(pool_, capacity_);
    start_ = end_ = 0;
    return;
  }
  if (capacity_ - end_ >= n) return;
  if (start_ > 0) {
    std::memmove(data_, data_ + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  if (capacity_ - end_ >= n) return;
  std::size_t grown = std::max(capacity_ * 2, end_ + n);
  if (grown < kBlock) grown = kBlock;
  char* bigger = take_block(pool_, grown);
  std::memcpy(bigger, data_, end_);
  give_block(pool_, data_, capacity_);
  data_ = bigger;
  capacity_ = grown;
}

void ByteBuffer::append(std::string_view bytes) {
  reserve_tail(bytes.size());
  std::memcpy(data_ + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

void ByteBuffer::set_pool(BufferPool* pool) {
  if (pool == pool_) return;
  if (data_ != nullptr) {
    // Unread bytes move with the connection: copy them into a block of the new pool.
    const std::size_t unread = end_ - start_;
    char* moved = take_block(pool, capacity_);
    std::memcpy(moved, data_ + start_, unread);
    give_block(pool_, data_, capacity_);
    data_ = moved;
    start_ = 0;
    end_ = unread;
  }
  pool_ = pool;
}

void ByteBuffer::release() {
  if (data_ == nullptr) return;
  give_block(pool_, data_, capacity_);
  data_ = nullptr;
  capacity_ = start_ = end_ = 0;
}

}  // namespace pgmux::pooler
