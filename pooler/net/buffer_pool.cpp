// Free list of receive-buffer blocks per worker.
#include "pooler/net/buffer_pool.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace pgmux::pooler {

namespace {
char* allocate(std::size_t size) {
  void* p = std::malloc(size);  // not zero-filled: pages are committed as bytes arrive
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}
}  // namespace

BufferPool::~BufferPool() {
  for (char* block : free_) std::free(block);
}

bool BufferPool::on_own_thread() const {
  auto& io = static_cast<asio::io_context&>(const_cast<BufferPool*>(this)->context());
  return io.get_executor().running_in_this_thread();
}

char* BufferPool::take(std::size_t size) {
  if (size != kBlockSize) {
    other_.fetch_add(1, std::memory_order_relaxed);
    other_bytes_.fetch_add(size, std::memory_order_relaxed);
    return allocate(size);
  }
  lent_.fetch_add(1, std::memory_order_relaxed);
  if (!free_.empty() && on_own_thread()) {
    char* block = free_.back();
    free_.pop_back();
    low_water_ = std::min(low_water_, free_.size());
    free_count_.fetch_sub(1, std::memory_order_relaxed);
    return block;
  }
  return allocate(kBlockSize);
}

void BufferPool::give(char* block, std::size_t size) {
  if (block == nullptr) return;
  if (size != kBlockSize) {
    // A block that grew for one large frame is released, not kept.
    other_.fetch_sub(1, std::memory_order_relaxed);
    other_bytes_.fetch_sub(size, std::memory_order_relaxed);
    std::free(block);
    return;
  }
  lent_.fetch_sub(1, std::memory_order_relaxed);
  if (free_.size() < kMaxFree && on_own_thread()) {
    free_.push_back(block);
    free_count_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::free(block);
}

void BufferPool::trim_unused() {
  for (std::size_t unused = std::min(low_water_, free_.size()); unused > 0; --unused) {
    std::free(free_.back());
    free_.pop_back();
    free_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  low_water_ = free_.size();
}

BufferStats BufferPool::stats() const {
  return {.lent = lent_.load(std::memory_order_relaxed),
          .free = free_count_.load(std::memory_order_relaxed),
          .other = other_.load(std::memory_order_relaxed),
          .other_bytes = other_bytes_.load(std::memory_order_relaxed)};
}

}  // namespace pgmux::pooler
