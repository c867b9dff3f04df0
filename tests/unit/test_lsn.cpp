// WAL position parsing and arithmetic.
#include <doctest/doctest.h>

#include "lag_monitor/lsn.hpp"

using namespace pgmux::lag;

TEST_CASE("LSNs parse from PostgreSQL's X/Y text and format back") {
  CHECK(parse_lsn("0/16B3748") == Lsn{0x16B3748});
  CHECK(parse_lsn("16/B374D848") == ((Lsn{0x16} << 32) | 0xB374D848));
  CHECK(format_lsn(*parse_lsn("16/B374D848")) == "16/B374D848");
  CHECK(format_lsn(0) == "0/0");
}

TEST_CASE("malformed LSNs are rejected") {
  for (const char* bad : {"", "0", "/1", "1/", "g/1", "1/123456789", "1/2/3", " 0/1"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_lsn(bad));
  }
}

TEST_CASE("lag in bytes is the distance behind and never negative") {
  CHECK(lag_bytes(1000, 400) == 600);
  CHECK(lag_bytes(400, 1000) == 0);
}
