// The receive that tells Asio's reactor when it drained the socket, over a real loopback
// socket: no bytes are missed whether they arrive before, between or after receives, a full
// buffer leaves the rest for the next receive, and end of file, cancellation and the handler's
// allocator behave as for Asio's own receive.
#include <doctest/doctest.h>

#include <string>

#include "pooler/net/drained_receive.hpp"

using namespace pgmux::pooler;

namespace {

struct Counts {
  int allocated = 0;
  int freed = 0;
};

// Counts what the operation allocates through the handler's allocator.
template <class T>
struct CountingAllocator {
  using value_type = T;
  Counts* counts;
  explicit CountingAllocator(Counts& c) : counts(&c) {}
  template <class U>
  explicit CountingAllocator(const CountingAllocator<U>& other) : counts(other.counts) {}
  T* allocate(std::size_t n) {
    ++counts->allocated;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
    ++counts->freed;
    std::allocator<T>().deallocate(p, n);
  }
  friend bool operator==(const CountingAllocator& a, const CountingAllocator& b) {
    return a.counts == b.counts;
  }
};

struct Pair {
  asio::io_context io{1};
  tcp::socket peer{io};
  Socket ours{io};

  Pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer.connect(acceptor.local_endpoint());
    ours = acceptor.accept(io);
  }
  // Runs the loop for a while: the reactor sees (and consumes) whatever edge there is.
  void spin() {
    io.run_for(std::chrono::milliseconds(30));
    io.restart();
  }
  void send(const std::string& bytes) { asio::write(peer, asio::buffer(bytes)); }

  struct Result {
    bool done = false;
    boost::system::error_code ec;
    std::string bytes;
  };
  // Starts one receive of at most `size` bytes; the result fills in as the loop runs.
  void start(Result& r, std::size_t size, char* area) {
    async_receive_drained(reactor_of(ours), ours, asio::buffer(area, size),
                          [&r, area](boost::system::error_code ec, std::size_t n) {
                            r.done = true;
                            r.ec = ec;
                            r.bytes.assign(area, n);
                          });
  }
  Result receive(std::size_t size = 64) {
    Result r;
    start(r, size, area_);
    io.run_for(std::chrono::milliseconds(500));
    io.restart();
    return r;
  }

 private:
  char area_[256] = {};
};

}  // namespace

TEST_CASE("drained receive: bytes sent before, between and after receives all arrive") {
  Pair p;
  p.send("early");
  p.spin();  // the edge comes and goes with nothing pending
  CHECK(p.receive().bytes == "early");

  // A short read: the next receive is queued without trying the socket, and the bytes that
  // come while no receive is pending (their edge consumed by the reactor) are still found.
  p.spin();
  p.send("between");
  p.spin();
  CHECK(p.receive().bytes == "between");

  // And with the receive queued first, the edge of new bytes performs it.
  Pair::Result r;
  char area[64];
  p.start(r, sizeof area, area);
  p.spin();
  CHECK_FALSE(r.done);
  p.send("later");
  p.io.run_for(std::chrono::milliseconds(500));
  CHECK(r.done);
  CHECK_FALSE(r.ec);
  CHECK(r.bytes == "later");
}

TEST_CASE("drained receive: a full buffer leaves the rest for the next receive") {
  Pair p;
  p.send("0123456789");
  p.spin();
  CHECK(p.receive(4).bytes == "0123");
  CHECK(p.receive(4).bytes == "4567");
  CHECK(p.receive(4).bytes == "89");
  // Drained now: a receive waits for new bytes.
  const Pair::Result none = p.receive(4);
  CHECK_FALSE(none.done);
}

TEST_CASE("drained receive: end of file, cancellation and the handler's allocator") {
  SUBCASE("the peer closing ends a pending receive with eof") {
    Pair p;
    Pair::Result r;
    char area[16];
    p.start(r, sizeof area, area);
    p.spin();
    p.peer.close();
    p.io.run_for(std::chrono::milliseconds(500));
    CHECK(r.done);
    CHECK(r.ec == asio::error::eof);
  }
  SUBCASE("cancel() ends it with operation_aborted and leaves the bytes in the socket") {
    Pair p;
    Pair::Result r;
    char area[16];
    p.start(r, sizeof area, area);
    p.ours.cancel();
    p.io.run_for(std::chrono::milliseconds(100));
    p.io.restart();
    CHECK(r.done);
    CHECK(r.ec == asio::error::operation_aborted);
    p.send("kept");
    CHECK(p.receive().bytes == "kept");
  }
  SUBCASE("the operation comes from the handler's allocator and goes back to it") {
    Pair p;
    Counts counts;
    bool done = false;
    char area[16];
    p.send("x");
    async_receive_drained(reactor_of(p.ours), p.ours, asio::buffer(area),
                          asio::bind_allocator(CountingAllocator<void>(counts),
                                               [&](boost::system::error_code, std::size_t) {
                                                 done = true;
                                                 CHECK(counts.freed == 1);  // before the call
                                               }));
    p.io.run_for(std::chrono::milliseconds(500));
    CHECK(done);
    CHECK(counts.allocated == 1);
    CHECK(counts.freed == 1);
  }
}
