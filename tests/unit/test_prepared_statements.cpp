// Prepared statements under transaction pooling: digest-derived server names, the client's
// name → definition table (with a ready-to-send Parse frame) and each server's LRU.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pooler/session/prepared_statements.hpp"
#include "wire.hpp"

using namespace pgmux::pooler;
using pgmux::test::be32;
using pgmux::test::cstr;

namespace {

std::string be16(std::uint16_t v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v)};
}

// What follows the statement name in a Parse body: query, parameter count, parameter OIDs.
std::string after_name(const std::string& query, const std::vector<std::uint32_t>& types) {
  std::string s = cstr(query) + be16(static_cast<std::uint16_t>(types.size()));
  for (auto t : types) s += be32(t);
  return s;
}

// A client's Parse body: statement name, then the rest.
std::string parse_body(const std::string& name, const std::string& query,
                       const std::vector<std::uint32_t>& types = {}) {
  return cstr(name) + after_name(query, types);
}

std::uint32_t read_be32(const std::string& s, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

}  // namespace

TEST_CASE("server statement names are pgmux_ and 32 hex digits of SHA-256") {
  const std::string rest = after_name("SELECT $1", {23});
  const std::string name = server_statement_name(rest);
  CHECK(name == server_statement_name(rest));
  CHECK(name.starts_with("pgmux_"));
  CHECK(name.size() == 38);
  CHECK(name.substr(6).find_first_not_of("0123456789abcdef") == std::string::npos);
  // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a3...
  CHECK(server_statement_name("abc") == "pgmux_ba7816bf8f01cfea414140de5dae2223");
  CHECK(server_statement_name("") == "pgmux_e3b0c44298fc1c149afbf4c8996fb924");
}

TEST_CASE("server statement names differ with the query text or the parameter types") {
  const std::string base = server_statement_name(after_name("SELECT $1", {23}));
  CHECK(base != server_statement_name(after_name("SELECT $1 ", {23})));
  CHECK(base != server_statement_name(after_name("select $1", {23})));
  CHECK(base != server_statement_name(after_name("SELECT $1", {20})));
  CHECK(base != server_statement_name(after_name("SELECT $1", {})));
  CHECK(base != server_statement_name(after_name("SELECT $1", {23, 23})));
  CHECK(base == server_statement_name(after_name("SELECT $1", {23})));
}

TEST_CASE("a client statement's Parse frame carries the server name and the original body") {
  ClientStatements cs;
  const std::vector<std::uint32_t> types = {23, 25};
  const std::string body = parse_body("stmt1", "SELECT $1, $2", types);
  const std::string rest = after_name("SELECT $1, $2", types);

  auto def = cs.define("stmt1", body);
  REQUIRE(def != nullptr);
  CHECK(def->server_name == server_statement_name(rest));

  const std::string& f = def->parse_frame;
  REQUIRE(f.size() >= 5);
  CHECK(f[0] == 'P');
  CHECK(read_be32(f, 1) == f.size() - 1);
  // Built by hand: tag, length, server name, then query and types exactly as the client sent.
  CHECK(f == pgmux::test::frame('P', cstr(def->server_name) + rest));
  CHECK(f.substr(5, def->server_name.size() + 1) == cstr(def->server_name));
  CHECK(f.substr(5 + def->server_name.size() + 1) == rest);
}

TEST_CASE("client statements: define, find, erase, clear") {
  ClientStatements cs;
  CHECK(cs.size() == 0);
  CHECK(cs.find("a") == nullptr);

  auto a = cs.define("a", parse_body("a", "SELECT 1"));
  auto b = cs.define("b", parse_body("b", "SELECT 2"));
  CHECK(cs.size() == 2);
  CHECK(cs.find("a") == a.get());
  CHECK(cs.find("b") == b.get());
  CHECK(cs.find("A") == nullptr);  // client names are case-sensitive bytes
  CHECK(a->server_name != b->server_name);

  // The same SQL under another client name shares the server-side statement.
  auto a2 = cs.define("other", parse_body("other", "SELECT 1"));
  CHECK(a2->server_name == a->server_name);
  CHECK(a2->parse_frame == a->parse_frame);
  CHECK(cs.size() == 3);

  CHECK(cs.erase("other"));
  CHECK_FALSE(cs.erase("other"));
  CHECK_FALSE(cs.erase("missing"));
  CHECK(cs.find("other") == nullptr);
  CHECK(cs.size() == 2);

  cs.clear();
  CHECK(cs.size() == 0);
  CHECK(cs.find("a") == nullptr);
  CHECK(cs.find("b") == nullptr);
  // Definitions handed out before stay valid.
  CHECK(a->server_name == server_statement_name(after_name("SELECT 1", {})));
}

TEST_CASE("client statements: defining a name again replaces it") {
  ClientStatements cs;
  auto first = cs.define("s", parse_body("s", "SELECT 1"));
  auto second = cs.define("s", parse_body("s", "SELECT 2", {20}));
  CHECK(cs.size() == 1);
  CHECK(cs.find("s") == second.get());
  CHECK(second->server_name == server_statement_name(after_name("SELECT 2", {20})));
  CHECK(first->server_name != second->server_name);
  // The old definition is still intact for whoever holds it.
  CHECK(first->server_name == server_statement_name(after_name("SELECT 1", {})));
}

TEST_CASE("client statements keep the effects recorded with them") {
  ClientStatements cs;
  auto plain = cs.define("p", parse_body("p", "SELECT 1"));
  CHECK_FALSE(plain->effects.changes_settings);
  CHECK(plain->effects.pin == PinReason::none);
  auto set = cs.define("s", parse_body("s", "SET x = 1"), scan_statement_effects("SET x = 1"));
  CHECK(cs.find("s")->effects.changes_settings);
  auto listen = cs.define("l", parse_body("l", "LISTEN ch"), scan_statement_effects("LISTEN ch"));
  CHECK(cs.find("l")->effects.pin == PinReason::listen);
  CHECK(set->server_name != listen->server_name);
}

TEST_CASE("client statements: the unnamed statement and empty queries") {
  ClientStatements cs;
  auto def = cs.define("", parse_body("", ""));
  CHECK(cs.find("") == def.get());
  CHECK(def->parse_frame == pgmux::test::frame('P', cstr(def->server_name) + after_name("", {})));
}

TEST_CASE("server statements: least recently used is evicted over capacity") {
  ServerStatements ss(3);
  CHECK(ss.size() == 0);
  CHECK_FALSE(ss.insert("a").has_value());
  CHECK_FALSE(ss.insert("b").has_value());
  CHECK_FALSE(ss.insert("c").has_value());
  CHECK(ss.size() == 3);

  auto ev = ss.insert("d");
  REQUIRE(ev.has_value());
  CHECK(*ev == "a");
  CHECK_FALSE(ss.contains("a"));
  CHECK(ss.contains("b"));
  CHECK(ss.contains("c"));
  CHECK(ss.contains("d"));
  CHECK(ss.size() == 3);

  ev = ss.insert("e");
  REQUIRE(ev.has_value());
  CHECK(*ev == "b");
}

TEST_CASE("server statements: touch refreshes recency") {
  ServerStatements ss(3);
  (void)ss.insert("a");
  (void)ss.insert("b");
  (void)ss.insert("c");
  ss.touch("a");        // order now: a, c, b (b least recent)
  ss.touch("missing");  // no effect
  CHECK(ss.size() == 3);
  CHECK_FALSE(ss.contains("missing"));

  auto ev = ss.insert("d");
  REQUIRE(ev.has_value());
  CHECK(*ev == "b");
  ev = ss.insert("e");
  REQUIRE(ev.has_value());
  CHECK(*ev == "c");
  ev = ss.insert("f");
  REQUIRE(ev.has_value());
  CHECK(*ev == "a");
}

TEST_CASE("server statements: re-inserting a known name refreshes it and evicts nothing") {
  ServerStatements ss(2);
  (void)ss.insert("a");
  (void)ss.insert("b");
  CHECK_FALSE(ss.insert("a").has_value());  // at capacity, but nothing new
  CHECK(ss.size() == 2);
  auto ev = ss.insert("c");
  REQUIRE(ev.has_value());
  CHECK(*ev == "b");  // "a" was refreshed by the second insert
  CHECK(ss.contains("a"));
  CHECK(ss.contains("c"));
}

TEST_CASE("server statements: erase and clear") {
  ServerStatements ss(2);
  (void)ss.insert("a");
  (void)ss.insert("b");
  ss.erase("a");
  ss.erase("missing");
  CHECK_FALSE(ss.contains("a"));
  CHECK(ss.size() == 1);
  // Room was freed: the next insert evicts nothing.
  CHECK_FALSE(ss.insert("c").has_value());
  CHECK(ss.size() == 2);
  auto ev = ss.insert("d");
  REQUIRE(ev.has_value());
  CHECK(*ev == "b");

  ss.clear();
  CHECK(ss.size() == 0);
  CHECK_FALSE(ss.contains("c"));
  CHECK_FALSE(ss.contains("d"));
  CHECK_FALSE(ss.insert("x").has_value());
  CHECK_FALSE(ss.insert("y").has_value());
  CHECK(ss.size() == 2);
}

TEST_CASE("server statements: a capacity of 0 means 1, never evicting the new statement") {
  ServerStatements ss;
  ss.set_capacity(0);
  CHECK_FALSE(ss.insert("a").has_value());
  auto ev = ss.insert("b");
  REQUIRE(ev.has_value());
  CHECK(*ev == "a");
  CHECK(ss.contains("b"));
  CHECK(ss.size() == 1);
}

TEST_CASE("statement caches count the bytes they hold, back to zero when emptied") {
  ClientStatements client;
  const std::string body1 =
      std::string("s1\0", 3) + std::string(200, 'q') + std::string("\0\0\0", 3);
  const std::string body2 = std::string("s2\0SELECT 1\0\0\0", 15);
  client.define("s1", body1);
  const std::size_t one = client.bytes();
  CHECK(one > 200);  // the Parse frame holds the query text
  client.define("s2", body2);
  CHECK(client.bytes() > one);
  client.define("s1", body1);  // redefined: counted once
  CHECK(client.erase("s2"));
  CHECK(client.bytes() == one);
  CHECK(client.erase("s1"));
  CHECK(client.bytes() == 0);

  ServerStatements server(2);
  server.insert("pgmux_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  const std::int64_t first = server.published_bytes();
  CHECK(first > 0);
  server.insert("pgmux_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  const auto evicted = server.insert("pgmux_cccccccccccccccccccccccccccccccc");
  CHECK(evicted.has_value());
  CHECK(server.published_bytes() == 2 * first);
  server.erase("pgmux_cccccccccccccccccccccccccccccccc");
  CHECK(server.published_bytes() == first);
  server.clear();
  CHECK(server.published_bytes() == 0);
}
