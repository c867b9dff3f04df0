// Objects of one size in chunks of their own, for objects that many clients hold for a while
// and then give up together (a transaction session, a parked wait): allocated from the general
// heap they would sit between objects that stay (sessions, SHOW CLIENTS entries), and the
// pages they free when a crowd of clients goes dormant could not be given back. Here a chunk
// that empties is returned to the kernel (one per size is kept for the next allocation).
//
// Not thread-safe: one per worker, used from its thread (or, once its threads are joined,
// from the thread destroying its event loop).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pgmux::pooler {

class Slab {
 public:
  static constexpr std::size_t kChunkBytes = 64 * 1024;

  explicit Slab(std::size_t object_size);
  // Chunks still holding objects are left mapped (a late free must not touch unmapped memory).
  ~Slab();
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  [[nodiscard]] void* allocate();
  void deallocate(void* p);
  // Unmaps the empty chunk kept for reuse (the worker's idle sweep).
  void release_spare();
  [[nodiscard]] std::size_t object_size() const { return object_size_; }
  // Objects allocated now, and chunks mapped (SHOW MEM, tests).
  [[nodiscard]] std::size_t in_use() const { return in_use_; }
  [[nodiscard]] std::size_t chunks() const { return chunks_; }

 private:
  struct Chunk;
  Chunk* map_chunk();
  void unmap_chunk(Chunk* chunk);
  static void unlink(Chunk*& head, Chunk* chunk);
  static void push(Chunk*& head, Chunk* chunk);

  std::size_t object_size_;
  std::size_t per_chunk_;
  Chunk* partial_ = nullptr;  // chunks with a free slot
  Chunk* full_ = nullptr;
  Chunk* spare_ = nullptr;  // one empty chunk kept for reuse
  std::size_t in_use_ = 0;
  std::size_t chunks_ = 0;
};

// Slabs for every size up to kMaxBytes, in 16-byte steps, created when first used.
class SlabSet {
 public:
  static constexpr std::size_t kMaxBytes = 1024;
  static constexpr std::size_t kStep = 16;
  SlabSet();
  ~SlabSet();
  SlabSet(const SlabSet&) = delete;
  SlabSet& operator=(const SlabSet&) = delete;

  // Larger sizes come from the general heap.
  [[nodiscard]] void* allocate(std::size_t bytes);
  void deallocate(void* p, std::size_t bytes);
  // Unmaps every slab's empty chunk kept for reuse.
  void release_spares();
  // Objects allocated now, and bytes of chunks mapped, over every size (SHOW MEM).
  [[nodiscard]] std::size_t in_use() const;
  [[nodiscard]] std::size_t mapped_bytes() const;

 private:
  Slab* slabs_[kMaxBytes / kStep] = {};
};

// std allocator over a SlabSet, for allocate_shared, unique objects and Asio handlers.
template <class T>
struct SlabAllocator {
  using value_type = T;
  explicit SlabAllocator(SlabSet& set) : slabs(&set) {}
  template <class U>
  explicit SlabAllocator(const SlabAllocator<U>& other) : slabs(other.slabs) {}
  T* allocate(std::size_t n) { return static_cast<T*>(slabs->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) { slabs->deallocate(p, n * sizeof(T)); }
  friend bool operator==(const SlabAllocator& a, const SlabAllocator& b) {
    return a.slabs == b.slabs;
  }
  SlabSet* slabs;
};

}  // namespace pgmux::pooler
