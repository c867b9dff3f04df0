// SCRAM-SHA-256 for pgmux: stored-secret parsing, and the server and client
// state machines of RFC 5802 / RFC 7677 with PostgreSQL's conventions (no channel binding,
// username ignored). OpenSSL provides SHA-256 and PBKDF2; the random bytes come from
// getrandom(2).
#include "protocol/scram.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>

namespace pgmux::protocol {
namespace {

namespace errc = boost::system::errc;

constexpr std::string_view kSecretPrefix = "SCRAM-SHA-256$";

boost::system::error_code protocol_error() {
  return errc::make_error_code(errc::protocol_error);
}
boost::system::error_code denied() {
  return errc::make_error_code(errc::permission_denied);
}
boost::system::error_code bad_secret() {
  return errc::make_error_code(errc::invalid_argument);
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string_view as_view(const ScramKey& key) {
  return {reinterpret_cast<const char*>(key.data()), key.size()};
}

// SHA-256 fetched from the default provider once, and never changed after: the implicit fetch
// behind EVP_sha256() and HMAC() costs several times the hashing of a login's short messages.
const EVP_MD* sha256_algorithm() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw std::runtime_error("SHA-256 is not available from OpenSSL");
    return fetched;
  }();
  return md;
}

// SHA-256 of the parts, concatenated.
ScramKey sha256_of(std::initializer_list<std::string_view> parts) {
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                    &EVP_MD_CTX_free);
  ScramKey out{};
  unsigned int len = 0;
  bool ok = ctx && EVP_DigestInit_ex2(ctx.get(), sha256_algorithm(), nullptr) == 1;
  for (std::string_view part : parts) {
    ok = ok && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  }
  if (!ok || EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return out;
}

ScramKey sha256(const ScramKey& data) {
  return sha256_of({as_view(data)});
}

ScramKey hmac_sha256(const ScramKey& key, std::string_view data) {
  // RFC 2104 over the fetched SHA-256; the 32-byte key is shorter than the 64-byte block, so
  // it is only padded with zeros.
  constexpr std::size_t kBlock = 64;
  std::array<char, kBlock> inner_pad{}, outer_pad{};
  for (std::size_t i = 0; i < kBlock; ++i) {
    const auto k = static_cast<unsigned char>(i < key.size() ? key[i] : 0);
    inner_pad[i] = static_cast<char>(k ^ 0x36U);
    outer_pad[i] = static_cast<char>(k ^ 0x5cU);
  }
  const ScramKey inner = sha256_of({{inner_pad.data(), kBlock}, data});
  return sha256_of({{outer_pad.data(), kBlock}, as_view(inner)});
}

ScramKey salted_password(std::string_view password, std::string_view salt, int iterations) {
  ScramKey out{};
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes_of(salt),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()), out.data()) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return out;
}

ScramKey xor_keys(const ScramKey& a, const ScramKey& b) {
  ScramKey out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

bool equal_keys(const ScramKey& a, const ScramKey& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The kernel's CSPRNG, asked directly: OpenSSL 3's RAND_bytes goes through its DRBG objects
// and their locks on every call, about 13,000 instructions for a login's 18-byte nonce
// (bench/instructions.sh, a login per transaction). getrandom(2) blocks only until the
// kernel's pool is first seeded at boot; a failure throws (start-up stops, a login fails)
// rather than fall back to anything weaker.
std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  std::size_t filled = 0;
  while (filled < count) {
    const ssize_t n = getrandom(out.data() + filled, count - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<std::size_t>(n);
  }
  return out;
}

// Decodes exactly 32 bytes of base64 into a key.
std::optional<ScramKey> decode_key(std::string_view text) {
  auto raw = base64_decode(text);
  if (!raw || raw->size() != ScramKey{}.size()) return std::nullopt;
  ScramKey key{};
  std::copy(raw->begin(), raw->end(), key.begin());
  return key;
}

std::optional<int> parse_positive_int(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// One "x=value" attribute of a SCRAM message; `value` points into the message.
struct Attribute {
  char name;
  std::string_view value;
};

// Splits "a=1,b=2" into attributes; nullopt if any part is not a letter followed by '='.
std::optional<std::vector<Attribute>> split_attributes(std::string_view text) {
  std::vector<Attribute> attrs;
  while (true) {
    auto comma = text.find(',');
    auto part = text.substr(0, comma);
    bool letter = part.size() >= 2 &&
                  ((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z'));
    if (!letter || part[1] != '=') return std::nullopt;
    attrs.push_back({part[0], part.substr(2)});
    if (comma == std::string_view::npos) return attrs;
    text.remove_prefix(comma + 1);
  }
}

bool has_mandatory_extension(const std::vector<Attribute>& attrs) {
  for (const auto& attr : attrs) {
    if (attr.name == 'm') return true;
  }
  return false;
}

// A nonce is non-empty printable ASCII without ',' (RFC 5802 "printable").
bool valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

// Escapes a username as a SCRAM saslname (',' -> "=2C", '=' -> "=3D").
std::string escape_saslname(std::string_view user) {
  std::string out;
  for (char c : user) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string random_nonce(std::size_t bytes) {
  return base64_encode(random_bytes(bytes));
}

boost::system::result<ScramSecret> parse_scram_secret(std::string_view text) {
  if (!text.starts_with(kSecretPrefix)) return bad_secret();
  text.remove_prefix(kSecretPrefix.size());
  auto colon1 = text.find(':');
  auto dollar = text.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return bad_secret();
  }
  auto keys = text.substr(dollar + 1);
  auto colon2 = keys.find(':');
  if (colon2 == std::string_view::npos) return bad_secret();

  auto iterations = parse_positive_int(text.substr(0, colon1));
  auto salt = base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  auto stored_key = decode_key(keys.substr(0, colon2));
  auto server_key = decode_key(keys.substr(colon2 + 1));
  if (!iterations || !salt || salt->empty() || !stored_key || !server_key) return bad_secret();
  return ScramSecret{*iterations, std::move(*salt), *stored_key, *server_key};
}

std::string format_scram_secret(const ScramSecret& secret) {
  return std::string(kSecretPrefix) + std::to_string(secret.iterations) + ":" +
         base64_encode(secret.salt) + "$" + base64_encode(as_view(secret.stored_key)) + ":" +
         base64_encode(as_view(secret.server_key));
}

ScramKeys derive_scram_keys(std::string_view password, std::string_view salt, int iterations) {
  const ScramKey salted = salted_password(password, salt, iterations);
  return {std::string(salt), iterations, hmac_sha256(salted, "Client Key"),
          hmac_sha256(salted, "Server Key")};
}

ScramSecret mock_scram_secret(std::string_view user, std::string_view instance_key) {
  ScramSecret secret;
  std::string seed(instance_key);
  seed += '\0';
  seed += user;
  const ScramKey digest = sha256_of({seed});
  secret.salt.assign(reinterpret_cast<const char*>(digest.data()), 16);
  const std::string random = random_bytes(64);
  std::copy_n(random.begin(), 32, secret.stored_key.begin());
  std::copy_n(random.begin() + 32, 32, secret.server_key.begin());
  return secret;
}

// Note: the password is used as given (no SASLprep), which matches PostgreSQL for ASCII
// passwords. A non-positive iteration count falls back to 4096.
ScramSecret make_scram_secret(std::string_view password, std::string_view salt, int iterations) {
  ScramSecret secret;
  secret.iterations = iterations > 0 ? iterations : 4096;
  secret.salt = salt.empty() ? random_bytes(16) : std::string(salt);
  const ScramKeys keys = derive_scram_keys(password, secret.salt, secret.iterations);
  secret.stored_key = sha256(keys.client_key);
  secret.server_key = keys.server_key;
  return secret;
}

// ---------------------------------------------------------------------------------------------
// ScramServer

ScramServer::ScramServer(ScramSecret secret, std::string server_nonce, std::string channel_binding)
    : secret_(std::move(secret)),
      server_nonce_(std::move(server_nonce)),
      channel_binding_(std::move(channel_binding)) {
  if (server_nonce_.empty()) server_nonce_ = random_nonce();
}

boost::system::result<std::string> ScramServer::handle_client_first(std::string_view msg,
                                                                    bool plus) {
  if (step_ != 0) return protocol_error();
  step_ = -1;  // any failure ends the exchange
  // GS2 header: "n,," (no channel binding), "y,," (the client could bind but thinks we
  // cannot) or "p=tls-server-end-point,," (binding, only with SCRAM-SHA-256-PLUS). An authzid
  // ("n,a=...,") is not supported, as in PostgreSQL.
  constexpr std::string_view kBinding = "p=tls-server-end-point,,";
  std::size_t header = 3;
  if (plus) {
    if (channel_binding_.empty() || !msg.starts_with(kBinding)) return protocol_error();
    header = kBinding.size();
  } else if (msg.size() < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg.substr(1, 2) != ",,") {
    return protocol_error();
  } else if (msg[0] == 'y' && !channel_binding_.empty()) {
    return protocol_error();  // we offered -PLUS: someone took it out of the client's sight
  }
  auto bare = msg.substr(header);
  auto attrs = split_attributes(bare);
  if (!attrs || attrs->size() < 2 || has_mandatory_extension(*attrs)) return protocol_error();
  // (*attrs)[0] is the username, which PostgreSQL ignores (it uses the startup packet's).
  if ((*attrs)[0].name != 'n' || (*attrs)[1].name != 'r') return protocol_error();
  if (!valid_nonce((*attrs)[1].value)) return protocol_error();

  gs2_header_ = std::string(msg.substr(0, header));
  client_first_bare_ = std::string(bare);
  combined_nonce_ = std::string((*attrs)[1].value) + server_nonce_;
  server_first_ = "r=" + combined_nonce_ + ",s=" + base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  step_ = 1;
  return server_first_;
}

boost::system::result<std::string> ScramServer::handle_client_final(std::string_view msg) {
  if (step_ != 1) return protocol_error();
  step_ = -1;
  auto attrs = split_attributes(msg);
  if (!attrs || attrs->size() < 3 || has_mandatory_extension(*attrs)) return protocol_error();
  const auto& proof_attr = attrs->back();
  if ((*attrs)[0].name != 'c' || (*attrs)[1].name != 'r' || proof_attr.name != 'p') {
    return protocol_error();
  }
  // With channel binding, c= carries the binding data: it proves the client saw this very
  // certificate, not one of a man in the middle.
  const bool binding = gs2_header_.starts_with("p=");
  if ((*attrs)[0].value != base64_encode(binding ? gs2_header_ + channel_binding_ : gs2_header_)) {
    return protocol_error();
  }
  if ((*attrs)[1].value != combined_nonce_) return protocol_error();
  auto proof = decode_key(proof_attr.value);
  if (!proof) return protocol_error();

  // Everything before ",p=": the proof attribute is last, so this is a prefix of msg.
  auto without_proof = msg.substr(0, msg.size() - proof_attr.value.size() - 3);
  std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  ScramKey client_key = xor_keys(*proof, hmac_sha256(secret_.stored_key, auth_message));
  if (!equal_keys(sha256(client_key), secret_.stored_key)) return denied();

  client_key_ = client_key;
  step_ = 2;
  return "v=" + base64_encode(as_view(hmac_sha256(secret_.server_key, auth_message)));
}

// ---------------------------------------------------------------------------------------------
// ScramClient

ScramClient::ScramClient(std::string password, std::string client_nonce, std::string user)
    : password_(std::move(password)),
      client_nonce_(std::move(client_nonce)),
      user_(std::move(user)) {
  if (client_nonce_.empty()) client_nonce_ = random_nonce();
}

std::string ScramClient::client_first() const {
  return "n,,n=" + escape_saslname(user_) + ",r=" + client_nonce_;
}

boost::system::result<ScramClient::ServerFirst> ScramClient::parse_server_first(
    std::string_view msg) {
  if (have_signature_ || !server_first_.empty()) return protocol_error();
  auto attrs = split_attributes(msg);
  if (!attrs || attrs->size() < 3 || has_mandatory_extension(*attrs)) return protocol_error();
  const auto& [r, nonce] = (*attrs)[0];
  if (r != 'r' || (*attrs)[1].name != 's' || (*attrs)[2].name != 'i') return protocol_error();
  if (!valid_nonce(nonce) || nonce.size() <= client_nonce_.size() ||
      !nonce.starts_with(client_nonce_)) {
    return protocol_error();
  }
  auto salt = base64_decode((*attrs)[1].value);
  auto iterations = parse_positive_int((*attrs)[2].value);
  if (!salt || salt->empty() || !iterations) return protocol_error();
  server_first_ = std::string(msg);
  combined_nonce_ = std::string(nonce);
  return ServerFirst{std::move(*salt), *iterations};
}

std::string ScramClient::client_final(const ScramKeys& keys) {
  const ScramKey stored_key = sha256(keys.client_key);
  std::string without_proof = "c=biws,r=" + combined_nonce_;
  std::string auth_message = client_first().substr(3) + "," + server_first_ + "," + without_proof;
  ScramKey proof = xor_keys(keys.client_key, hmac_sha256(stored_key, auth_message));
  server_signature_ = hmac_sha256(keys.server_key, auth_message);
  have_signature_ = true;
  return without_proof + ",p=" + base64_encode(as_view(proof));
}

boost::system::result<std::string> ScramClient::handle_server_first(std::string_view msg) {
  auto first = parse_server_first(msg);
  if (!first) return first.error();
  return client_final(derive_scram_keys(password_, first->salt, first->iterations));
}

boost::system::result<void> ScramClient::verify_server_final(std::string_view msg) const {
  if (!have_signature_) return protocol_error();
  auto attrs = split_attributes(msg);
  if (!attrs) return protocol_error();
  const auto& [name, value] = attrs->front();
  if (name == 'e') return denied();  // the server rejected us (e.g. "e=invalid-proof")
  if (name != 'v') return protocol_error();
  auto signature = decode_key(value);
  if (!signature) return protocol_error();
  if (!equal_keys(*signature, server_signature_)) return denied();
  return {};
}

}  // namespace pgmux::protocol
