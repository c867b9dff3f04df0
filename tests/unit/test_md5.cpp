// Unit tests for PostgreSQL's md5 password scheme (protocol/md5.hpp). Expected values were
// computed independently with coreutils md5sum, e.g. `printf 'barfoo' | md5sum`.
#include <doctest/doctest.h>

#include "protocol/md5.hpp"

using pgmux::protocol::md5_password_hash;
using pgmux::protocol::md5_salted_response;

TEST_CASE("md5_password_hash is 'md5' + hex(md5(password + user))") {
  CHECK(md5_password_hash("foo", "bar") == "md596948aad3fcae80c08a35c9b5958cd89");
  CHECK(md5_password_hash("postgres", "postgres") == "md53175bce1d3201d16594cebf9d7eb3f9d");
}

TEST_CASE("md5_password_hash output is 'md5' followed by 32 lower-case hex digits") {
  auto hash = md5_password_hash("", "");
  REQUIRE(hash.size() == 35);
  CHECK(hash.starts_with("md5"));
  for (char c : hash.substr(3)) CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
}

TEST_CASE("md5_salted_response hashes the stored hex digest followed by the raw salt bytes") {
  // printf '96948aad3fcae80c08a35c9b5958cd89\x01\x02\x03\x04' | md5sum
  CHECK(md5_salted_response("md596948aad3fcae80c08a35c9b5958cd89", {1, 2, 3, 4}) ==
        "md5b1916b09d8747a21bbdb42586375cadd");
}

TEST_CASE("md5_salted_response treats salt bytes 0x00 and >= 0x80 as raw bytes") {
  // printf '96948aad3fcae80c08a35c9b5958cd89\x00\xff\x80\x7f' | md5sum
  CHECK(md5_salted_response("md596948aad3fcae80c08a35c9b5958cd89", {0x00, 0xff, 0x80, 0x7f}) ==
        "md51cfb90726bf9bb9c218b21e81af815dd");
}

TEST_CASE("md5_salted_response depends on the salt") {
  auto stored = md5_password_hash("foo", "bar");
  CHECK(md5_salted_response(stored, {1, 2, 3, 4}) != md5_salted_response(stored, {1, 2, 3, 5}));
}
