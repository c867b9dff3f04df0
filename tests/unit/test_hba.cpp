// pg_hba.conf-format access rules: parsing (quotes, comments, lists, CIDR and netmask forms),
// first-match-wins matching, and refusals for what pgmux cannot honour.
#include <doctest/doctest.h>

#include <string>

#include "pooler/config/hba.hpp"

using namespace pgmux::pooler;
namespace ip = boost::asio::ip;

namespace {

const ip::address kLocal = ip::make_address("127.0.0.1");
const ip::address kOffice = ip::make_address("10.1.2.3");
const ip::address kV6 = ip::make_address("2001:db8::42");

std::string parse_error(const std::string& text) {
  try {
    (void)HbaRules::parse(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the first matching line decides; no match refuses") {
  const HbaRules rules = HbaRules::parse(R"(
# TYPE     DATABASE      USER          ADDRESS          METHOD
hostssl    all           certuser      0.0.0.0/0        cert
hostnossl  all           all           10.0.0.0/8       reject   # no plain text from the office
host       app,"my db"   app,"we,ird"  10.0.0.0/8       scram-sha-256
host       sameuser      all           127.0.0.1/32     md5
host       all           all           2001:db8::/32    trust
host       all           admin         127.0.0.1 255.255.255.255  scram-sha-256
)");
  CHECK(rules.size() == 6);
  auto method = [&](bool tls, const char* db, const char* user, const ip::address& from) {
    const HbaRule* r = rules.match(tls, db, user, from);
    return r == nullptr ? std::string("none") : std::string(to_string(r->method));
  };
  CHECK(method(true, "app", "certuser", kOffice) == "cert");
  CHECK(method(false, "app", "certuser", kLocal) == "none");  // hostssl needs TLS
  CHECK(method(false, "app", "app", kOffice) == "reject");    // hostnossl first
  CHECK(method(true, "app", "app", kOffice) == "scram-sha-256");
  CHECK(method(true, "my db", "we,ird", kOffice) == "scram-sha-256");
  CHECK(method(true, "other", "app", kOffice) == "none");
  CHECK(method(false, "bob", "bob", kLocal) == "md5");  // sameuser
  CHECK(method(false, "app", "bob", kLocal) == "none");
  CHECK(method(false, "x", "y", kV6) == "trust");
  CHECK(method(false, "x", "admin", kLocal) == "scram-sha-256");  // netmask form
  // An IPv4 client on an IPv6 socket (v4-mapped) matches IPv4 lines.
  CHECK(method(false, "bob", "bob", ip::make_address("::ffff:127.0.0.1")) == "md5");
}

TEST_CASE("lines pgmux cannot honour are refused with their line number") {
  CHECK(parse_error("local all all trust").find("line 1: local lines") == 0);
  CHECK(parse_error("\nhost all all 127.0.0.1/32 ldap").find("line 2: authentication method") == 0);
  CHECK(parse_error("host all all 127.0.0.1/32 md5 clientcert=verify-full").find("options") !=
        std::string::npos);
  CHECK(parse_error("host all +admins 127.0.0.1/32 md5").find("group") != std::string::npos);
  CHECK(parse_error("host all all 127.0.0.1/32 cert").find("only available for hostssl") !=
        std::string::npos);
  CHECK(parse_error("host all all 127.0.0.1/33 md5").find("CIDR") != std::string::npos);
  CHECK(parse_error("host all all example.com md5").find("host names") != std::string::npos);
  CHECK(parse_error("host all all 127.0.0.1 md5").find("netmask") != std::string::npos);
  CHECK(parse_error("host all all 10.0.0.0 255.0.255.0 md5").find("not contiguous") !=
        std::string::npos);
  CHECK(parse_error("host all all samenet md5").find("not supported") != std::string::npos);
  CHECK(parse_error("host \"all all 127.0.0.1/32 md5").find("unterminated") != std::string::npos);
  CHECK(parse_error("hots all all 127.0.0.1/32 md5").find("connection type") != std::string::npos);
  CHECK(parse_error("# only a comment\n\n").empty());
}
