// Client access rules in pg_hba.conf's format ([pgmux] hba_file): which clients may log in,
// to which databases, as which users, from where, and how they authenticate. First match
// wins; no match is a refusal, as in PostgreSQL. Pure: parsed from text, matched against
// values, no sockets.
//
//   # TYPE     DATABASE   USER        ADDRESS         METHOD
//   hostssl    app        all         10.0.0.0/8      scram-sha-256
//   host       pgmux      admin       127.0.0.1/32    scram-sha-256
//   hostnossl  all        all         all             reject
//   hostssl    all        +certified  0.0.0.0/0       cert        (groups: not supported)
//
// TYPE is host, hostssl or hostnossl (pgmux has no Unix socket: local lines are refused).
// DATABASE and USER are all, a name, or comma-separated names ("quoted" for names with
// commas or spaces); DATABASE also takes sameuser. ADDRESS is all, an IPv4 or IPv6 address
// with a /prefix, or an address and a netmask in two fields. METHOD is trust, reject, md5,
// scram-sha-256 or cert.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace pgmux::pooler {

enum class HbaMethod : std::uint8_t { trust, reject, md5, scram_sha_256, cert };
[[nodiscard]] const char* to_string(HbaMethod m);

struct HbaRule {
  enum class Tls : std::uint8_t { any, required, refused };  // host, hostssl, hostnossl
  Tls tls = Tls::any;
  std::vector<std::string> databases;  // empty: all; "sameuser" as given
  std::vector<std::string> users;      // empty: all
  bool any_address = true;
  boost::asio::ip::address network;  // compared under `prefix` bits
  int prefix = 0;
  HbaMethod method = HbaMethod::reject;
  int line = 0;  // in the file, for logs
};

class HbaRules {
 public:
  // Throws std::invalid_argument("LINE: problem") for a line pgmux cannot honour.
  static HbaRules parse(std::string_view text);

  // The first rule that matches, or nullptr (refused).
  [[nodiscard]] const HbaRule* match(bool tls, std::string_view database, std::string_view user,
                                     const boost::asio::ip::address& from) const;
  [[nodiscard]] std::size_t size() const { return rules_.size(); }
  [[nodiscard]] bool uses(HbaMethod m) const {
    for (const HbaRule& r : rules_) {
      if (r.method == m) return true;
    }
    return false;
  }

 private:
  std::vector<HbaRule> rules_;
};

}  // namespace pgmux::pooler
