// Where PostgreSQL's tokens end (router/sql_lexing.hpp), the scans shared by the routing key
// and the session engine's statement effects.
#include <doctest/doctest.h>

#include <string_view>

#include "router/sql_lexing.hpp"

using namespace pgmux::router::sql;
constexpr auto npos = std::string_view::npos;

TEST_CASE("string literals end after their closing quote; '' and E'\\'' do not close them") {
  CHECK(string_end("'abc' x", 0) == 5);
  CHECK(string_end("'it''s' x", 0) == 7);
  CHECK(string_end("E'it\\'s' x", 1) == 8);
  CHECK(string_end("e'a\\\\' x", 1) == 6);
  // Without the E prefix a backslash is an ordinary character (standard_conforming_strings).
  CHECK(string_end("'a\\' x", 0) == 4);
  // An identifier that ends in e before a quote is a type name (date'…'), not an E prefix.
  CHECK(string_end("somee'a\\' x", 5) == 9);
  CHECK(string_end("'never closed", 0) == npos);
  CHECK(string_end("E'escaped at the end\\'", 1) == npos);
}

TEST_CASE("quoted identifiers end after their closing quote; \"\" does not close them") {
  CHECK(quoted_identifier_end("\"a\"\"b\" x", 0) == 6);
  CHECK(quoted_identifier_end("\"t\"", 0) == 3);
  CHECK(quoted_identifier_end("\"open", 0) == npos);
}

TEST_CASE("block comments nest as PostgreSQL nests them") {
  CHECK(block_comment_end("/* a */ x", 0) == 7);
  CHECK(block_comment_end("/* a /* b */ c */ x", 0) == 17);
  CHECK(block_comment_end("/* a /* b */ c", 0) == npos);
  CHECK(block_comment_end("/*", 0) == npos);
}

TEST_CASE("dollar-quote tags, and the dollars that are not one") {
  CHECK(dollar_tag("$$ body $$", 0) == "$$");
  CHECK(dollar_tag("$fn$ body $fn$", 0) == "$fn$");
  CHECK(dollar_tag("$1", 0).empty());     // a parameter
  CHECK(dollar_tag("$1$", 0).empty());    // tags do not start with a digit
  CHECK(dollar_tag("$a b$", 0).empty());  // nor hold a blank
  CHECK(dollar_tag("$open", 0).empty());  // nor run to the end
  CHECK(dollar_tag("$é$", 0) == "$é$");   // bytes of a multi-byte character may
}
