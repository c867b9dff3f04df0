// The lent receive buffer: no memory until bytes arrive, growth only for bytes received, the
// block given back when drained; and the per-worker pool that lends standard blocks.
#include <doctest/doctest.h>

#include <string>

#include "pooler/net/buffer_pool.hpp"
#include "pooler/net/byte_buffer.hpp"

using namespace pgmux::pooler;

TEST_CASE("a buffer holds no memory until bytes arrive, and none once they are read") {
  ByteBuffer b;
  CHECK(b.capacity() == 0);
  b.append("hello");
  CHECK(b.capacity() > 0);
  CHECK(b.unread() == "hello");
  b.consume(5);
  b.release_if_drained();
  CHECK(b.capacity() == 0);
}

TEST_CASE("a small read gets a small block; a relay read a standard one") {
  ByteBuffer small;
  small.reserve_tail(100);
  CHECK(small.capacity() == 128);
  ByteBuffer relay;
  relay.reserve_tail(16 * 1024);
  CHECK(relay.capacity() == BufferPool::kBlockSize);
}

TEST_CASE("growth follows the bytes held, not what is asked for next") {
  ByteBuffer b;
  const std::string chunk(1000, 'x');
  b.append(chunk);
  for (int i = 0; i < 40; ++i) b.append(chunk);  // 41,000 bytes held whole
  CHECK(b.size() == 41'000);
  CHECK(b.capacity() < 2 * 41'000 + BufferPool::kBlockSize);
  CHECK(b.unread().substr(40'000) == chunk);
  // Consumed bytes make room again before the buffer grows.
  b.consume(40'000);
  const std::size_t before = b.capacity();
  b.reserve_tail(30'000);
  CHECK(b.capacity() == before);
  CHECK(b.unread() == chunk);
}

TEST_CASE("the pool lends standard blocks from its free list on its own thread") {
  asio::io_context io(1);
  BufferPool& pool = BufferPool::of(io.get_executor());
  char* first = nullptr;
  asio::post(io, [&] {
    ByteBuffer b(&pool);
    b.reserve_tail(BufferPool::kBlockSize);
    CHECK(pool.stats().lent == 1);
    first = static_cast<char*>(b.tail().data());
    b.release_if_drained();
    CHECK(pool.stats().lent == 0);
    CHECK(pool.stats().free == 1);
    ByteBuffer again(&pool);
    again.reserve_tail(BufferPool::kBlockSize);
    CHECK(static_cast<char*>(again.tail().data()) == first);  // reused, not allocated
    // A block that grew past the standard size is freed when drained, never kept.
    again.append(std::string(3 * BufferPool::kBlockSize, 'y'));
    CHECK(pool.stats().other == 1);
    again.consume(again.size());
    again.release_if_drained();
    CHECK(pool.stats().other == 0);
    CHECK(pool.stats().other_bytes == 0);
  });
  io.run();
  CHECK(first != nullptr);
}
