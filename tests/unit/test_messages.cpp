// Decoder and encoder tests at byte level, including malformed bodies.
#include <doctest/doctest.h>

#include "protocol/frame_reader.hpp"
#include "protocol/message_writer.hpp"
#include "protocol/messages.hpp"
#include "wire.hpp"

using namespace pgmux::protocol;
using pgmux::test::be32;
using pgmux::test::cstr;

TEST_CASE("a StartupMessage yields its version and parameters") {
  const std::string body = be32(196608) + cstr("user") + cstr("app") + cstr("database") +
                           cstr("shop") + cstr("application_name") + cstr("") +
                           std::string(1, '\0');
  auto p = decode_startup(body);
  REQUIRE(p.has_value());
  CHECK(p->kind == StartupPacket::Kind::startup);
  CHECK(p->version == kProtocolVersion3);
  CHECK(find_param(*p, "user") == "app");
  CHECK(find_param(*p, "database") == "shop");
  CHECK(p->params.size() == 3);
  CHECK(find_param(*p, "missing").empty());
}

TEST_CASE("SSLRequest, GSSENCRequest and CancelRequest are recognised") {
  CHECK(decode_startup(be32(80877103))->kind == StartupPacket::Kind::ssl_request);
  CHECK(decode_startup(be32(80877104))->kind == StartupPacket::Kind::gssenc_request);
  auto c = decode_startup(be32(80877102) + be32(1234) + be32(0x7fff0001));
  REQUIRE(c.has_value());
  CHECK(c->kind == StartupPacket::Kind::cancel);
  CHECK(c->cancel_pid == 1234);
  CHECK(c->cancel_secret == 0x7fff0001);
  CHECK_FALSE(decode_startup(be32(80877102) + be32(1)).has_value());  // truncated cancel
  // A cancel one pgmux instance passes to the peer that issued the key: its own code.
  auto peer = decode_startup(be32(80877199) + be32(1234) + be32(5));
  REQUIRE(peer.has_value());
  CHECK(peer->kind == StartupPacket::Kind::peer_cancel);
  CHECK(peer->cancel_pid == 1234);
  CHECK(peer->cancel_secret == 5);
  CHECK_FALSE(decode_startup(be32(80877103) + "x").has_value());  // trailing junk
}

TEST_CASE("malformed StartupMessages are rejected") {
  CHECK_FALSE(
      decode_startup(be32(196608) + cstr("user") + cstr("app")).has_value());    // no final NUL
  CHECK_FALSE(decode_startup(be32(196608) + cstr("user") + "app").has_value());  // unterminated
  CHECK_FALSE(
      decode_startup(be32(196608) + cstr("") + cstr("x") + std::string(1, '\0')).has_value());
  CHECK_FALSE(decode_startup("ab").has_value());
}

TEST_CASE("Authentication requests decode by code") {
  auto ok = decode_authentication(be32(0));
  REQUIRE(ok.has_value());
  CHECK(ok->code == AuthCode::ok);
  const std::string md5_body = be32(5) + "salt";  // views point into it
  auto md5 = decode_authentication(md5_body);
  REQUIRE(md5.has_value());
  CHECK(md5->data == "salt");
  CHECK_FALSE(decode_authentication(be32(5) + "sal").has_value());
  auto sasl = decode_authentication(be32(10) + cstr("SCRAM-SHA-256") + std::string(1, '\0'));
  REQUIRE(sasl.has_value());
  CHECK(sasl->code == AuthCode::sasl);
}

TEST_CASE("ParameterStatus, BackendKeyData and ReadyForQuery decode strictly") {
  const std::string ps_body = cstr("TimeZone") + cstr("UTC");
  auto ps = decode_parameter_status(ps_body);
  REQUIRE(ps.has_value());
  CHECK(ps->name == "TimeZone");
  CHECK(ps->value == "UTC");
  CHECK_FALSE(decode_parameter_status(cstr("TimeZone") + "UTC").has_value());
  auto k = decode_backend_key_data(be32(42) + be32(99));
  REQUIRE(k.has_value());
  CHECK(k->pid == 42);
  CHECK(k->secret == 99);
  CHECK_FALSE(decode_backend_key_data(be32(42)).has_value());
  CHECK(*decode_ready_for_query("T") == 'T');
  CHECK_FALSE(decode_ready_for_query("X").has_value());
  CHECK_FALSE(decode_ready_for_query("II").has_value());
}

TEST_CASE("ErrorResponse fields round-trip through the encoder") {
  std::string out;
  append_error(out, {.severity = "FATAL",
                     .sqlstate = "53300",
                     .message = "too many",
                     .detail = "d",
                     .hint = "h"});
  FrameReader r;
  auto f = r.parse_tagged(out);
  REQUIRE(f.status == FrameStatus::complete);
  CHECK(f.frame.tag == 'E');
  auto e = decode_error_fields(f.frame.body);
  REQUIRE(e.has_value());
  CHECK(e->severity == "FATAL");
  CHECK(e->sqlstate == "53300");
  CHECK(e->message == "too many");
  CHECK(e->detail == "d");
  CHECK(e->hint == "h");
  CHECK_FALSE(decode_error_fields("Cabc").has_value());  // unterminated field
}

TEST_CASE("extended-protocol messages decode names and reject bad kinds") {
  std::string out;
  append_parse(out, "s1", "select $1", {23});
  auto p = decode_parse(FrameReader().parse_tagged(out).frame.body);
  REQUIRE(p.has_value());
  CHECK(p->name == "s1");
  CHECK(p->query == "select $1");
  REQUIRE(p->param_types.size() == 1);
  CHECK(p->param_types[0] == 23);

  out.clear();
  append_bind(out, "portal", "s1", {"42"});
  auto b = decode_bind(FrameReader().parse_tagged(out).frame.body);
  REQUIRE(b.has_value());
  CHECK(b->portal == "portal");
  CHECK(b->statement == "s1");

  CHECK(decode_close("S" + cstr("s1"))->name == "s1");
  CHECK(decode_describe("P" + cstr(""))->kind == 'P');
  CHECK_FALSE(decode_close("Q" + cstr("s1")).has_value());
  auto e = decode_execute(cstr("") + be32(10));
  REQUIRE(e.has_value());
  CHECK(e->max_rows == 10);
  CHECK_FALSE(decode_execute(cstr("")).has_value());
  CHECK(*decode_query(cstr("select 1")) == "select 1");
  CHECK_FALSE(decode_query("select 1").has_value());
  CHECK(*decode_copy_fail(cstr("boom")) == "boom");
}

TEST_CASE("SASLInitialResponse decodes the mechanism and data") {
  std::string out;
  append_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=abc");
  auto s = decode_sasl_initial_response(FrameReader().parse_tagged(out).frame.body);
  REQUIRE(s.has_value());
  CHECK(s->mechanism == "SCRAM-SHA-256");
  CHECK(s->data == "n,,n=,r=abc");
  CHECK_FALSE(
      decode_sasl_initial_response(cstr("SCRAM-SHA-256") + be32(100) + "short").has_value());
}

TEST_CASE("encoders write exact bytes") {
  std::string out;
  append_ready_for_query(out, 'I');
  CHECK(out == std::string("Z\0\0\0\5I", 6));
  out.clear();
  append_sync(out);
  append_terminate(out);
  CHECK(out == std::string("S\0\0\0\4X\0\0\0\4", 10));
  out.clear();
  append_startup(out, {{"user", "u"}});
  CHECK(out == be32(4 + 4 + 5 + 2 + 1) + be32(196608) + cstr("user") + cstr("u") + '\0');
  out.clear();
  append_cancel_request(out, 7, 9);
  CHECK(out == be32(16) + be32(80877102) + be32(7) + be32(9));
  out.clear();
  append_cancel_request(out, 7, 9, kPeerCancelRequestCode);
  CHECK(out == be32(16) + be32(80877199) + be32(7) + be32(9));
  out.clear();
  append_copy_data(out, "row\n");
  append_copy_done(out);
  CHECK(out == std::string("d\0\0\0\x08row\nc\0\0\0\4", 14));
}
