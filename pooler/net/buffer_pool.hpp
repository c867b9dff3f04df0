// The receive-buffer blocks of one worker: a free list of standard-size blocks that sockets
// borrow while they hold unread bytes and give back when drained, so an idle connection holds
// no buffer and a busy one allocates nothing per transaction. One per io_context (an Asio
// service), touched only from the thread running that context; counters are atomics so the
// admin console and /metrics can read them from anywhere.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

#include "pooler/net/asio_util.hpp"

namespace pgmux::pooler {

struct BufferStats {
  std::uint64_t lent = 0;         // standard blocks held by sockets now
  std::uint64_t free = 0;         // standard blocks on the free list
  std::uint64_t other = 0;        // other blocks held now: small login reads, frames held whole
  std::uint64_t other_bytes = 0;  // their bytes
  BufferStats& operator+=(const BufferStats& o) {
    lent += o.lent;
    free += o.free;
    other += o.other;
    other_bytes += o.other_bytes;
    return *this;
  }
};

class BufferPool : public asio::execution_context::service {
 public:
  static constexpr std::size_t kBlockSize = 16 * 1024;
  // Blocks kept for reuse beyond those lent; more are freed (a burst does not stay resident).
  static constexpr std::size_t kMaxFree = 256;
  using key_type = BufferPool;
  static inline asio::execution_context::id id;

  explicit BufferPool(asio::execution_context& ctx) : service(ctx) { free_.reserve(kMaxFree); }
  ~BufferPool() override;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The pool of the io_context an executor belongs to.
  template <class Executor>
  static BufferPool& of(const Executor& ex) {
    return asio::use_service<BufferPool>(asio::query(ex, asio::execution::context));
  }

  // A block of `size` bytes, uninitialised (memory is committed by the bytes written into it):
  // a standard block from the free list, or any other size straight from the allocator.
  [[nodiscard]] char* take(std::size_t size);
  void give(char* block, std::size_t size);

  [[nodiscard]] BufferStats stats() const;
  // Frees the free blocks that no one took since the last call (the worker's idle sweep): a
  // burst's blocks do not stay resident once its clients have gone quiet. Own thread only.
  void trim_unused();

 private:
  void shutdown() override {}
  // Only the context's own thread may use the free list; others allocate directly.
  [[nodiscard]] bool on_own_thread() const;

  std::vector<char*> free_;
  std::size_t low_water_ = 0;  // the fewest free blocks since the last trim_unused()
  std::atomic<std::uint64_t> lent_{0}, free_count_{0}, other_{0}, other_bytes_{0};
};

}  // namespace pgmux::pooler
