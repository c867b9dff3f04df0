// The per-worker slabs that hold transaction sessions and parked waits: objects of one size
// in chunks of their own, chunks given back to the kernel once they empty.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "pooler/net/slab.hpp"

using namespace pgmux::pooler;

TEST_CASE("a slab hands out distinct aligned slots and gives empty chunks back") {
  Slab slab(472);  // about a transaction session
  CHECK(slab.object_size() == 480);
  std::vector<void*> objects;
  for (int i = 0; i < 1000; ++i) {
    void* p = slab.allocate();
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
    std::memset(p, i & 0xff, slab.object_size());  // every byte of a slot is usable
    objects.push_back(p);
  }
  CHECK(std::set<void*>(objects.begin(), objects.end()).size() == objects.size());
  CHECK(slab.in_use() == 1000);
  const std::size_t per_chunk = (Slab::kChunkBytes - 64) / 480;
  CHECK(slab.chunks() == (1000 + per_chunk - 1) / per_chunk);
  // Each object still holds what was written: no slot overlaps another.
  for (int i = 0; i < 1000; ++i) {
    const auto* bytes = static_cast<const unsigned char*>(objects[static_cast<std::size_t>(i)]);
    CHECK(std::all_of(bytes, bytes + 480, [i](unsigned char b) { return b == (i & 0xff); }));
  }
  // Freed in a scattered order, as clients go dormant: every chunk empties, one is kept.
  for (std::size_t i = 0; i < objects.size(); i += 2) slab.deallocate(objects[i]);
  for (std::size_t i = 1; i < objects.size(); i += 2) slab.deallocate(objects[i]);
  CHECK(slab.in_use() == 0);
  CHECK(slab.chunks() == 1);
  // The kept chunk serves the next allocations.
  void* again = slab.allocate();
  CHECK(slab.chunks() == 1);
  slab.deallocate(again);
}

TEST_CASE("a freed slot is reused before a new chunk is mapped") {
  Slab slab(100);
  void* a = slab.allocate();
  void* b = slab.allocate();
  slab.deallocate(a);
  CHECK(slab.allocate() == a);
  slab.deallocate(b);
  CHECK(slab.in_use() == 1);
  CHECK(slab.chunks() == 1);
}

TEST_CASE("a slab set sorts sizes into 16-byte classes and leaves large ones to the heap") {
  SlabSet slabs;
  void* small = slabs.allocate(24);
  void* medium = slabs.allocate(472);
  void* large = slabs.allocate(4096);  // over kMaxBytes: the general heap
  CHECK(slabs.in_use() == 2);
  CHECK(slabs.mapped_bytes() == 2 * Slab::kChunkBytes);
  slabs.deallocate(small, 24);
  slabs.deallocate(medium, 472);
  slabs.deallocate(large, 4096);
  CHECK(slabs.in_use() == 0);

  // Through the allocator, as allocate_shared and Asio handlers use it.
  SlabAllocator<std::uint64_t> alloc(slabs);
  std::uint64_t* p = alloc.allocate(1);
  *p = 42;
  CHECK(slabs.in_use() == 1);
  SlabAllocator<char> rebound(alloc);
  CHECK(rebound == SlabAllocator<char>(slabs));
  alloc.deallocate(p, 1);
  CHECK(slabs.in_use() == 0);
}
