#include "pooler/net/slab.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <initializer_list>
#include <new>

namespace pgmux::pooler {

// At the start of its kChunkBytes-aligned mapping, so an object finds its chunk by masking.
struct Slab::Chunk {
  Chunk* prev = nullptr;
  Chunk* next = nullptr;
  void* free = nullptr;         // freed slots, linked through their first bytes
  std::uint32_t used = 0;       // objects allocated from this chunk now
  std::uint32_t untouched = 0;  // slots never handed out yet start at this index
};

namespace {

constexpr std::size_t kHeaderBytes = 64;  // sizeof(Chunk), rounded up to keep slots aligned

char* slot(void* chunk, std::size_t size, std::size_t index) {
  return static_cast<char*>(chunk) + kHeaderBytes + index * size;
}

}  // namespace

Slab::Slab(std::size_t object_size)
    : object_size_((object_size + 15) / 16 * 16),
      per_chunk_((kChunkBytes - kHeaderBytes) / object_size_) {
  static_assert(sizeof(Chunk) <= kHeaderBytes);
}

Slab::~Slab() {
  for (Chunk* list : {partial_, full_}) {
    for (Chunk* c = list; c != nullptr;) {
      Chunk* next = c->next;
      if (c->used == 0) unmap_chunk(c);  // else an object outlives us: leave its memory
      c = next;
    }
  }
  if (spare_ != nullptr) unmap_chunk(spare_);
}

Slab::Chunk* Slab::map_chunk() {
  // Map twice the size and keep the aligned half.
  void* raw =
      ::mmap(nullptr, 2 * kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kChunkBytes - 1) & ~(kChunkBytes - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t tail = aligned + kChunkBytes;
  if (tail < start + 2 * kChunkBytes) {
    ::munmap(reinterpret_cast<void*>(tail), start + 2 * kChunkBytes - tail);
  }
  ++chunks_;
  return new (reinterpret_cast<void*>(aligned)) Chunk();
}

void Slab::unmap_chunk(Chunk* chunk) {
  --chunks_;
  ::munmap(chunk, kChunkBytes);
}

void Slab::unlink(Chunk*& head, Chunk* chunk) {
  if (chunk->prev != nullptr) chunk->prev->next = chunk->next;
  if (chunk->next != nullptr) chunk->next->prev = chunk->prev;
  if (head == chunk) head = chunk->next;
  chunk->prev = chunk->next = nullptr;
}

void Slab::push(Chunk*& head, Chunk* chunk) {
  chunk->prev = nullptr;
  chunk->next = head;
  if (head != nullptr) head->prev = chunk;
  head = chunk;
}

void* Slab::allocate() {
  if (partial_ == nullptr) {
    Chunk* fresh = spare_ != nullptr ? spare_ : map_chunk();
    spare_ = nullptr;
    push(partial_, fresh);
  }
  Chunk* c = partial_;
  void* p = nullptr;
  if (c->free != nullptr) {
    p = c->free;
    c->free = *static_cast<void**>(p);
  } else {
    p = slot(c, object_size_, c->untouched++);
  }
  ++c->used;
  ++in_use_;
  if (c->free == nullptr && c->untouched == per_chunk_) {
    unlink(partial_, c);
    push(full_, c);
  }
  return p;
}

void Slab::deallocate(void* p) {
  auto* c = reinterpret_cast<Chunk*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunkBytes - 1));
  const bool was_full = c->free == nullptr && c->untouched == per_chunk_;
  *static_cast<void**>(p) = c->free;
  c->free = p;
  --c->used;
  --in_use_;
  if (was_full) {
    unlink(full_, c);
    push(partial_, c);
  }
  if (c->used == 0) {
    unlink(partial_, c);
    if (spare_ == nullptr) {
      *c = Chunk();  // fresh again: its slots are handed out from the start
      spare_ = c;
    } else {
      unmap_chunk(c);
    }
  }
}

void Slab::release_spare() {
  if (spare_ != nullptr) unmap_chunk(spare_);
  spare_ = nullptr;
}

SlabSet::SlabSet() = default;

void SlabSet::release_spares() {
  for (Slab* s : slabs_) {
    if (s != nullptr) s->release_spare();
  }
}

SlabSet::~SlabSet() {
  for (Slab* s : slabs_) delete s;
}

void* SlabSet::allocate(std::size_t bytes) {
  if (bytes == 0 || bytes > kMaxBytes) return ::operator new(bytes);
  Slab*& s = slabs_[(bytes - 1) / kStep];
  if (s == nullptr) s = new Slab(((bytes - 1) / kStep + 1) * kStep);
  return s->allocate();
}

void SlabSet::deallocate(void* p, std::size_t bytes) {
  if (bytes == 0 || bytes > kMaxBytes) {
    ::operator delete(p);
    return;
  }
  slabs_[(bytes - 1) / kStep]->deallocate(p);
}

std::size_t SlabSet::in_use() const {
  std::size_t n = 0;
  for (const Slab* s : slabs_) n += s != nullptr ? s->in_use() : 0;
  return n;
}

std::size_t SlabSet::mapped_bytes() const {
  std::size_t n = 0;
  for (const Slab* s : slabs_) n += s != nullptr ? s->chunks() * Slab::kChunkBytes : 0;
  return n;
}

}  // namespace pgmux::pooler
