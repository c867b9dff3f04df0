// Malformed input from clients: bogus startup packets and garbage after login.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

// Reads what pgmux says until it closes (≤ 5 s): either nothing (a clean close) or an
// ErrorResponse first. Returns a description of anything else, "" when acceptable.
std::string expect_error_or_close(RawClient& raw) {
  std::string got;
  const auto st = raw.read_until_closed(got, milliseconds(5000));
  if (st == RawClient::Status::timeout) {
    return "no close within 5 s (received " + std::to_string(got.size()) + " bytes)";
  }
  if (!got.empty() && got[0] != 'E') return "first byte is '" + got.substr(0, 1) + "', not 'E'";
  return "";
}

}  // namespace

TEST_CASE("bogus startup packets get an ErrorResponse or a clean close; pgmux keeps serving") {
  PgmuxProcess px(test_env(), {.name = "badstartup"});
  INFO(px.log_tail());
  PgConn bystander(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(bystander.ok(), bystander.error());

  const std::vector<std::pair<std::string, std::string>> packets = {
      {"length 3", be32(3)},
      {"length 0", be32(0)},
      {"length 2 GB", be32(0x7ffffff0U) + be32(196608) + std::string(64, 'u')},
      {"negative length", be32(0x80000000U) + be32(196608)},
      {"length 8, protocol 4660.22136", be32(8) + be32(0x12345678U)},
      {"startup without a terminator", be32(20) + be32(196608) + std::string("user\0appxxxx", 12)},
      {"an HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
  };
  for (const auto& [label, bytes] : packets) {
    CAPTURE(label);
    RawClient raw(px.port());
    REQUIRE(raw.send(bytes));
    const std::string problem = expect_error_or_close(raw);
    CHECK_MESSAGE(problem.empty(), problem);
  }
  CHECK(px.running());
  CHECK(bystander.query_value("SELECT 'bystander ok'") == "bystander ok");
  PgConn fresh(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(fresh.ok(), fresh.error());
  CHECK(fresh.query_value("SELECT 2") == "2");
}

TEST_CASE("a client sending garbage after login is disconnected without affecting others") {
  PgmuxProcess px(test_env(), {.name = "garbage", .pool_size = 4});
  INFO(px.log_tail());
  PgConn bystander(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(bystander.ok(), bystander.error());
  bystander.run("BEGIN");
  CHECK(bystander.query_value("SELECT 'in tx'") == "in tx");

  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"a frame longer than max_message_size", "Q" + be32(0x7fffffffU) + "SELECT 1"},
      {"a negative frame length", "Q" + be32(0xfffffff0U) + "junk"},
      {"an unknown message type", "z" + be32(8) + "abcd"},
      {"random bytes", std::string("\x01\x02\x03\x04\x05\xff\xfe\xfd\x00\x00\x00\x00", 12)},
  };
  for (const auto& [label, bytes] : garbage) {
    CAPTURE(label);
    PgConn victim(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(victim.ok(), victim.error());
    CHECK(victim.query_value("SELECT 1") == "1");
    const int fd = PQsocket(victim.get());
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
    // libpq reads the answer: an error or a closed connection, never a hang or a result.
    const PgResult r = victim.exec("SELECT 'should not run'");
    CHECK_FALSE(r.ok());
    CHECK(PQstatus(victim.get()) == CONNECTION_BAD);
  }
  CHECK(px.running());
  CHECK(bystander.query_value("SELECT 'still in tx'") == "still in tx");
  CHECK(bystander.tx_status() == PQTRANS_INTRANS);
  bystander.run("COMMIT");
  PgConn fresh(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(fresh.ok(), fresh.error());
  CHECK(fresh.query_value("SELECT 3") == "3");
}
