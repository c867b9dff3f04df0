// The relays' read over a real loopback socket: bytes that arrived while nothing waited for
// them are still found (Asio's reactor is edge-triggered), and an idle socket holds no buffer.
#include <doctest/doctest.h>

#include <string>

#include "pooler/net/framed_socket.hpp"

using namespace pgmux::pooler;

namespace {

struct Pair {
  asio::io_context io{1};
  tcp::socket peer{io};
  std::unique_ptr<FramedSocket> ours;

  Pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer.connect(acceptor.local_endpoint());
    ours = std::make_unique<FramedSocket>(acceptor.accept(io), 1024);
  }
  // Runs the loop for a while with nothing waiting on the socket: the reactor sees (and
  // consumes) whatever readiness edge there is.
  void spin() {
    asio::steady_timer t(io, std::chrono::milliseconds(30));
    t.async_wait([](boost::system::error_code) {});
    io.run();
    io.restart();
  }
  // read_some() within `bound`; returns the bytes read ("" when it did not complete).
  std::string read(std::chrono::milliseconds bound) {
    std::string got;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          auto [ec, n] = co_await ours->read_some();
          if (!ec) got.assign(ours->buffer().unread());
        },
        asio::detached);
    io.run_for(bound);
    io.restart();
    return got;
  }
};

}  // namespace

TEST_CASE("read_some finds bytes that arrived before anything waited for them") {
  Pair p;
  p.spin();  // the socket is registered, nothing is readable
  asio::write(p.peer, asio::buffer(std::string("early")));
  p.spin();  // the readiness edge comes and goes with no read pending
  CHECK(p.read(std::chrono::milliseconds(500)) == "early");
}

TEST_CASE("read_some waits holding no buffer and wakes when bytes arrive") {
  Pair p;
  std::string got;
  asio::co_spawn(
      p.io,
      [&]() -> awaitable<void> {
        auto [ec, n] = co_await p.ours->read_some();
        if (!ec) got.assign(p.ours->buffer().unread());
      },
      asio::detached);
  p.io.run_for(std::chrono::milliseconds(50));
  CHECK(got.empty());
  CHECK(p.ours->buffer().capacity() == 0);  // waiting: no block borrowed
  asio::write(p.peer, asio::buffer(std::string("late")));
  p.io.run_for(std::chrono::milliseconds(500));
  CHECK(got == "late");
}

TEST_CASE("read_ready takes what a parked socket was woken for, and holds nothing otherwise") {
  Pair p;
  // Nothing has arrived: a spurious wake-up reads nothing and keeps no block.
  auto [none_ec, none_n] = p.ours->read_ready();
  CHECK((none_ec == asio::error::would_block || none_ec == asio::error::try_again));
  CHECK(none_n == 0);
  CHECK(p.ours->buffer().capacity() == 0);
  // A parked wait (a plain handler, no coroutine) wakes when bytes arrive; the bytes are then
  // read without another wait.
  boost::system::error_code woke = asio::error::operation_aborted;
  p.ours->socket().async_wait(Socket::wait_read, [&](boost::system::error_code ec) { woke = ec; });
  asio::write(p.peer, asio::buffer(std::string("query")));
  p.io.run_for(std::chrono::milliseconds(500));
  p.io.restart();
  CHECK_FALSE(woke);
  auto [ec, n] = p.ours->read_ready();
  CHECK_FALSE(ec);
  CHECK(n == 5);
  CHECK(p.ours->buffer().unread() == "query");
  p.ours->buffer().consume(5);
  p.ours->release_buffer();
  CHECK(p.ours->buffer().capacity() == 0);
  // The peer leaves: the wait ends and the read reports end of file.
  p.ours->socket().async_wait(Socket::wait_read, [&](boost::system::error_code ec) { woke = ec; });
  p.peer.close();
  p.io.run_for(std::chrono::milliseconds(500));
  CHECK_FALSE(woke);
  auto [eof_ec, eof_n] = p.ours->read_ready();
  CHECK(eof_ec == asio::error::eof);
  CHECK(p.ours->buffer().capacity() == 0);
}

TEST_CASE("take_landed: a request received into a landing, and the read after it skipped") {
  Pair p;
  // A landing not filled: the socket held no more, so the read that follows a wake-up is
  // answered without asking the socket (bytes sent now stay there for the next read).
  p.ours->take_landed(std::string_view("Q\0\0\0\x08x", 6), false);
  asio::write(p.peer, asio::buffer(std::string("next")));
  p.spin();
  auto [ec, n] = p.ours->read_ready();
  CHECK_FALSE(ec);
  CHECK(n == 0);
  CHECK(p.ours->buffer().unread() == std::string_view("Q\0\0\0\x08x", 6));
  CHECK(p.ours->buffer().capacity() >= FramedSocket::kReadChunk);  // a block, not a sliver
  // Only that one read is skipped: the next one finds the bytes.
  auto [ec2, n2] = p.ours->read_ready();
  CHECK_FALSE(ec2);
  CHECK(n2 == 4);
  p.ours->buffer().consume(p.ours->buffer().size());
  // A filled landing: more may wait in the socket, and the read asks for it.
  p.ours->take_landed("abcd", true);
  asio::write(p.peer, asio::buffer(std::string("rest")));
  p.spin();
  auto [ec3, n3] = p.ours->read_ready();
  CHECK_FALSE(ec3);
  CHECK(n3 == 4);
  CHECK(p.ours->buffer().unread() == "abcdrest");
}
