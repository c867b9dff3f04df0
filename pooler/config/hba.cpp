// pg_hba.conf-format access rules: tokenising (quotes, comments), parsing and matching.
#include "pooler/config/hba.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>

namespace pgmux::pooler {

namespace ip = boost::asio::ip;

const char* to_string(HbaMethod m) {
  switch (m) {
    case HbaMethod::trust:
      return "trust";
    case HbaMethod::reject:
      return "reject";
    case HbaMethod::md5:
      return "md5";
    case HbaMethod::scram_sha_256:
      return "scram-sha-256";
    case HbaMethod::cert:
      return "cert";
  }
  return "?";
}

namespace {

// Stands for a comma inside quotes until lists are split on the other commas.
constexpr char kQuotedComma = '\x01';

// One field of a line: its text and whether any of it was quoted (a quoted "all" is a name).
struct Token {
  std::string text;
  bool quoted = false;
};

[[noreturn]] void fail(int line, const std::string& problem) {
  throw std::invalid_argument("line " + std::to_string(line) + ": " + problem);
}

// Splits a line into whitespace-separated fields; double quotes protect spaces and commas,
// '#' outside quotes starts a comment.
std::vector<Token> tokenize(std::string_view line, int number) {
  std::vector<Token> out;
  Token current;
  bool in_token = false, in_quotes = false;
  for (char c : line) {
    if (in_quotes) {
      if (c == '"') {
        in_quotes = false;
      } else {
        current.text += c == ',' ? kQuotedComma : c;
      }
      continue;
    }
    if (c == '#') break;
    if (c == ' ' || c == '\t' || c == '\r') {
      if (in_token) out.push_back(std::move(current));
      current = {};
      in_token = false;
      continue;
    }
    in_token = true;
    if (c == '"') {
      in_quotes = current.quoted = true;
    } else {
      current.text += c;
    }
  }
  if (in_quotes) fail(number, "unterminated quoted string");
  if (in_token) out.push_back(std::move(current));
  return out;
}

// "a,b,c" (or "all" unquoted: empty list). Commas inside quotes belong to the name.
std::vector<std::string> name_list(const Token& t, int line) {
  if (!t.quoted && t.text == "all") return {};
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = t.text.find(',', start);
    std::string name = t.text.substr(start, comma - start);
    if (name.empty()) fail(line, "empty name in list \"" + t.text + "\"");
    std::replace(name.begin(), name.end(), kQuotedComma, ',');
    if (name.starts_with('+')) fail(line, "group membership (+role) is not supported");
    if (name.starts_with('@')) fail(line, "@file inclusion is not supported");
    names.push_back(std::move(name));
    if (comma == std::string::npos) return names;
    start = comma + 1;
  }
}

// The bytes of an address, most significant first.
std::vector<unsigned char> bytes_of(const ip::address& a) {
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  const auto b = a.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

int prefix_of_mask(const ip::address& mask, int line) {
  const std::vector<unsigned char> bytes = bytes_of(mask);
  int prefix = 0;
  bool ended = false;
  for (unsigned char b : bytes) {
    for (int bit = 7; bit >= 0; --bit) {
      const bool set = ((b >> bit) & 1) != 0;
      if (set && ended) fail(line, "netmask \"" + mask.to_string() + "\" is not contiguous");
      if (set) ++prefix;
      if (!set) ended = true;
    }
  }
  return prefix;
}

// ADDRESS [MASK]: fills the rule; returns how many fields it used.
std::size_t parse_address(const std::vector<Token>& f, std::size_t at, HbaRule& rule, int line) {
  const std::string& text = f[at].text;
  if (text == "all") return 1;
  if (text == "samehost" || text == "samenet") fail(line, text + " is not supported");
  rule.any_address = false;
  const auto slash = text.find('/');
  boost::system::error_code ec;
  rule.network = ip::make_address(text.substr(0, slash), ec);
  if (ec) fail(line, "invalid IP address \"" + text + "\" (host names are not supported)");
  const int bits = rule.network.is_v4() ? 32 : 128;
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), rule.prefix);
    if (err != std::errc{} || end != p.data() + p.size() || rule.prefix < 0 || rule.prefix > bits) {
      fail(line, "invalid CIDR mask in \"" + text + "\"");
    }
    return 1;
  }
  if (at + 1 >= f.size() - 1) fail(line, "\"" + text + "\" needs a /prefix or a netmask");
  const ip::address mask = ip::make_address(f[at + 1].text, ec);
  if (ec || mask.is_v4() != rule.network.is_v4()) {
    fail(line, "invalid netmask \"" + f[at + 1].text + "\"");
  }
  rule.prefix = prefix_of_mask(mask, line);
  return 2;
}

HbaMethod parse_method(const std::string& text, int line) {
  static constexpr std::array<std::pair<std::string_view, HbaMethod>, 5> kMethods = {{
      {"trust", HbaMethod::trust},
      {"reject", HbaMethod::reject},
      {"md5", HbaMethod::md5},
      {"scram-sha-256", HbaMethod::scram_sha_256},
      {"cert", HbaMethod::cert},
  }};
  for (const auto& [name, method] : kMethods) {
    if (text == name) return method;
  }
  fail(line, "authentication method \"" + text +
                 "\" is not supported (trust, reject, md5, scram-sha-256, cert)");
}

HbaRule parse_line(const std::vector<Token>& f, int line) {
  if (f.size() < 4) fail(line, "expected TYPE DATABASE USER ADDRESS METHOD");
  HbaRule rule;
  rule.line = line;
  const std::string& type = f[0].text;
  if (type == "host") {
    rule.tls = HbaRule::Tls::any;
  } else if (type == "hostssl") {
    rule.tls = HbaRule::Tls::required;
  } else if (type == "hostnossl") {
    rule.tls = HbaRule::Tls::refused;
  } else if (type == "local") {
    fail(line, "local lines do not apply: pgmux listens on TCP only");
  } else {
    fail(line, "unknown connection type \"" + type + "\" (host, hostssl, hostnossl)");
  }
  rule.databases = name_list(f[1], line);
  rule.users = name_list(f[2], line);
  if (f.size() < 5) fail(line, "expected TYPE DATABASE USER ADDRESS METHOD");
  const std::size_t used = parse_address(f, 3, rule, line);
  const std::size_t method_at = 3 + used;
  if (method_at >= f.size()) fail(line, "missing authentication method");
  rule.method = parse_method(f[method_at].text, line);
  if (method_at + 1 < f.size()) {
    fail(line, "authentication options (\"" + f[method_at + 1].text + "\") are not supported");
  }
  if (rule.method == HbaMethod::cert && rule.tls != HbaRule::Tls::required) {
    fail(line, "cert authentication is only available for hostssl lines");
  }
  return rule;
}

bool in_network(const ip::address& from, const HbaRule& rule) {
  ip::address addr = from;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped() && rule.network.is_v4()) {
    addr = ip::make_address_v4(ip::v4_mapped, addr.to_v6());
  }
  if (addr.is_v4() != rule.network.is_v4()) return false;
  const std::vector<unsigned char> a = bytes_of(addr), n = bytes_of(rule.network);
  int bits = rule.prefix;
  for (std::size_t i = 0; i < a.size() && bits > 0; ++i, bits -= 8) {
    const unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((a[i] & mask) != (n[i] & mask)) return false;
  }
  return true;
}

bool listed(const std::vector<std::string>& names, std::string_view value) {
  return names.empty() || std::find(names.begin(), names.end(), value) != names.end();
}

}  // namespace

HbaRules HbaRules::parse(std::string_view text) {
  HbaRules out;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const std::vector<Token> fields = tokenize(line, number);
    if (fields.empty()) continue;
    out.rules_.push_back(parse_line(fields, number));
  }
  return out;
}

const HbaRule* HbaRules::match(bool tls, std::string_view database, std::string_view user,
                               const ip::address& from) const {
  for (const HbaRule& r : rules_) {
    if (r.tls == HbaRule::Tls::required && !tls) continue;
    if (r.tls == HbaRule::Tls::refused && tls) continue;
    const bool db_ok =
        r.databases.empty() ||
        std::any_of(r.databases.begin(), r.databases.end(), [&](const std::string& d) {
          return d == database || (d == "sameuser" && database == user);
        });
    if (!db_ok || !listed(r.users, user)) continue;
    if (!r.any_address && !in_network(from, r)) continue;
    return &r;
  }
  return nullptr;
}

}  // namespace pgmux::pooler
