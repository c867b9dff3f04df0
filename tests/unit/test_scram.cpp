// Unit tests for SCRAM-SHA-256 (protocol/scram.hpp): the RFC 7677 vector through both the
// client and the server, random-nonce exchanges, rejection of wrong passwords and malformed or
// out-of-order messages, base64, and PostgreSQL's stored-secret format.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/scram.hpp"

namespace {

using namespace pgmux::protocol;
namespace errc = boost::system::errc;

const auto kProtocolError = errc::make_error_code(errc::protocol_error);
const auto kPermissionDenied = errc::make_error_code(errc::permission_denied);

// RFC 7677 section 3.
constexpr const char* kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr const char* kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr const char* kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
constexpr const char* kRfcNonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

ScramSecret rfc_secret() {
  return make_scram_secret("pencil", base64_decode(kRfcSalt).value());
}

ScramServer rfc_server() {
  return ScramServer(rfc_secret(), kRfcServerNonce);
}

// A server that has already answered the RFC client-first message.
ScramServer rfc_server_after_first() {
  auto server = rfc_server();
  REQUIRE(server.handle_client_first(kRfcClientFirst).has_value());
  return server;
}

ScramClient rfc_client() {
  return ScramClient("pencil", kRfcClientNonce, "user");
}

template <class T>
boost::system::error_code error_of(const boost::system::result<T>& r) {
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_CASE("ScramClient reproduces the RFC 7677 SCRAM-SHA-256 exchange") {
  auto client = rfc_client();
  CHECK(client.client_first() == kRfcClientFirst);
  auto final_msg = client.handle_server_first(kRfcServerFirst);
  REQUIRE(final_msg.has_value());
  CHECK(*final_msg == kRfcClientFinal);
  CHECK(client.verify_server_final(kRfcServerFinal).has_value());
}

TEST_CASE("ScramServer reproduces the RFC 7677 SCRAM-SHA-256 exchange") {
  auto server = rfc_server();
  auto first = server.handle_client_first(kRfcClientFirst);
  REQUIRE(first.has_value());
  CHECK(*first == kRfcServerFirst);
  auto final_msg = server.handle_client_final(kRfcClientFinal);
  REQUIRE(final_msg.has_value());
  CHECK(*final_msg == kRfcServerFinal);
}

TEST_CASE("client and server with random nonces and salt authenticate each other") {
  ScramClient client("correct horse battery staple");
  ScramServer server(make_scram_secret("correct horse battery staple"));
  auto server_first = server.handle_client_first(client.client_first());
  REQUIRE(server_first.has_value());
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.has_value());
  auto server_final = server.handle_client_final(*client_final);
  REQUIRE(server_final.has_value());
  CHECK(client.verify_server_final(*server_final).has_value());
}

TEST_CASE("client sends an empty username by default, as libpq does") {
  ScramClient client("pw", "abc");
  CHECK(client.client_first() == "n,,n=,r=abc");
}

TEST_CASE("client escapes ',' and '=' in the username") {
  ScramClient client("pw", "abc", "a,b=c");
  CHECK(client.client_first() == "n,,n=a=2Cb=3Dc,r=abc");
}

TEST_CASE("two clients get different random nonces") {
  CHECK(ScramClient("pw").client_first() != ScramClient("pw").client_first());
}

TEST_CASE("server rejects a wrong password with permission_denied") {
  ScramClient client("wrong password");
  ScramServer server(make_scram_secret("right password"));
  auto server_first = server.handle_client_first(client.client_first());
  REQUIRE(server_first.has_value());
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.has_value());
  CHECK(error_of(server.handle_client_final(*client_final)) == kPermissionDenied);
}

TEST_CASE("server rejects a well-formed but altered proof with permission_denied") {
  auto server = rfc_server_after_first();
  std::string tampered = kRfcClientFinal;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(error_of(server.handle_client_final(tampered)) == kPermissionDenied);
}

TEST_CASE("client rejects a server that knows StoredKey but not ServerKey") {
  // A server holding a stolen StoredKey can verify the proof but cannot sign for itself.
  auto secret = make_scram_secret("pw");
  secret.server_key = make_scram_secret("other", secret.salt).server_key;
  ScramClient client("pw");
  ScramServer server(secret);
  auto server_first = server.handle_client_first(client.client_first());
  REQUIRE(server_first.has_value());
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.has_value());
  auto server_final = server.handle_client_final(*client_final);
  REQUIRE(server_final.has_value());
  CHECK(error_of(client.verify_server_final(*server_final)) == kPermissionDenied);
}

TEST_CASE("client treats a server error attribute e= as permission_denied") {
  auto client = rfc_client();
  REQUIRE(client.handle_server_first(kRfcServerFirst).has_value());
  CHECK(error_of(client.verify_server_final("e=invalid-proof")) == kPermissionDenied);
}

TEST_CASE("server accepts the 'y,,' GS2 header and then requires c=eSws") {
  SUBCASE("c=biws does not match the 'y,,' header") {
    auto server = rfc_server();
    REQUIRE(server.handle_client_first("y,,n=,r=rOprNGfwEbeRWgbNEkqO").has_value());
    CHECK(error_of(server.handle_client_final(kRfcClientFinal)) == kProtocolError);
  }
  SUBCASE("c=eSws passes the binding check, so the (n,, based) proof is what fails") {
    auto server = rfc_server();
    REQUIRE(server.handle_client_first("y,,n=,r=rOprNGfwEbeRWgbNEkqO").has_value());
    std::string msg =
        std::string("c=eSws,r=") + kRfcNonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    CHECK(error_of(server.handle_client_final(msg)) == kPermissionDenied);
  }
}

TEST_CASE("server ignores the username in client-first") {
  auto server = rfc_server();
  auto first = server.handle_client_first("n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  REQUIRE(first.has_value());
  CHECK(*first == kRfcServerFirst);
}

TEST_CASE("server rejects malformed client-first messages with protocol_error") {
  const std::vector<std::string> bad = {
      "",
      "n",
      "n,,",
      "n,,n=user",                         // missing r=
      "n,,r=abc",                          // missing n=
      "n,,n=user,r=",                      // empty nonce
      "n,,n=user,r=a b",                   // nonce with a space
      "p=tls-server-end-point,,n=,r=abc",  // channel binding
      "n,a=bob,n=,r=abc",                  // authzid
      "x,,n=,r=abc",                       // unknown GS2 flag
      "n,,m=ext,n=,r=abc",                 // mandatory extension
      "n,,n=,r=abc,m=ext",                 // mandatory extension later on
      "n,,n=,,r=abc",                      // empty attribute
      "n,,n=,r=abc,",                      // trailing comma
      "n,,n=,rabc",                        // attribute without '='
      std::string("n,,n=,r=ab\0c", 12),    // NUL in nonce
  };
  for (const auto& msg : bad) {
    CAPTURE(msg);
    auto server = rfc_server();
    CHECK(error_of(server.handle_client_first(msg)) == kProtocolError);
  }
}

TEST_CASE("server rejects malformed client-final messages with protocol_error") {
  const std::string nonce = kRfcNonce;
  const std::string proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::vector<std::string> bad = {
      "",
      "c=biws",
      "c=biws,r=" + nonce,                                // missing proof
      "c=biws," + proof,                                  // missing r=
      "r=" + nonce + "," + proof,                         // missing c=
      "c=biws,r=" + nonce + "X," + proof,                 // wrong combined nonce
      "c=biws,r=rOprNGfwEbeRWgbNEkqO," + proof,           // client nonce only
      "c=biws,r=" + nonce + ",p=not*base64",              // bad base64 proof
      "c=biws,r=" + nonce + ",p=AAAA",                    // proof of the wrong length
      "c=biws,r=" + nonce + "," + proof + ",x=1",         // proof not last
      "c=eSws,r=" + nonce + "," + proof,                  // binding flag does not match
      "c=cD10bHMtdW5pcXVlLCw=,r=" + nonce + "," + proof,  // channel binding data
      "c=biws,r=" + nonce + ",m=ext," + proof,            // mandatory extension
  };
  for (const auto& msg : bad) {
    CAPTURE(msg);
    auto server = rfc_server_after_first();
    CHECK(error_of(server.handle_client_final(msg)) == kProtocolError);
  }
}

TEST_CASE("server signs extensions between r= and p= into the AuthMessage") {
  // The extension is part of the AuthMessage, so the RFC proof no longer matches.
  auto server = rfc_server_after_first();
  std::string msg = std::string("c=biws,r=") + kRfcNonce +
                    ",x=ext,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  CHECK(error_of(server.handle_client_final(msg)) == kPermissionDenied);
}

TEST_CASE("server rejects messages out of order with protocol_error") {
  SUBCASE("client-final before client-first") {
    auto server = rfc_server();
    CHECK(error_of(server.handle_client_final(kRfcClientFinal)) == kProtocolError);
  }
  SUBCASE("client-first twice") {
    auto server = rfc_server_after_first();
    CHECK(error_of(server.handle_client_first(kRfcClientFirst)) == kProtocolError);
  }
  SUBCASE("client-final again after success") {
    auto server = rfc_server_after_first();
    REQUIRE(server.handle_client_final(kRfcClientFinal).has_value());
    CHECK(error_of(server.handle_client_final(kRfcClientFinal)) == kProtocolError);
  }
  SUBCASE("no second try after a wrong proof") {
    auto server = rfc_server_after_first();
    std::string tampered = kRfcClientFinal;
    tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
    CHECK(error_of(server.handle_client_final(tampered)) == kPermissionDenied);
    CHECK(error_of(server.handle_client_final(kRfcClientFinal)) == kProtocolError);
  }
  SUBCASE("no second client-first after a malformed one") {
    auto server = rfc_server();
    CHECK(error_of(server.handle_client_first("garbage")) == kProtocolError);
    CHECK(error_of(server.handle_client_first(kRfcClientFirst)) == kProtocolError);
  }
}

TEST_CASE("server never accepts a truncated client-final message") {
  const std::string full = kRfcClientFinal;
  for (std::size_t len = 0; len < full.size(); ++len) {
    CAPTURE(len);
    auto server = rfc_server_after_first();
    CHECK(server.handle_client_final(full.substr(0, len)).has_error());
  }
}

TEST_CASE("server survives every truncation of client-first without crashing") {
  const std::string full = kRfcClientFirst;
  for (std::size_t len = 0; len <= full.size(); ++len) {
    auto server = rfc_server();
    auto result = server.handle_client_first(full.substr(0, len));
    // Prefixes cutting the nonce short are still valid messages; shorter ones are not.
    CHECK(result.has_value() == (len > std::string("n,,n=user,r=").size()));
  }
}

TEST_CASE("client rejects malformed server-first messages with protocol_error") {
  const std::vector<std::string> bad = {
      "",
      "r=rOprNGfwEbeRWgbNEkqO",                                       // no salt or iterations
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",         // no iterations
      "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",                             // no salt
      "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                            // no nonce
      "r=XXXXNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // foreign nonce
      "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",     // no server nonce part
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",   // bad base64 salt
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096",                          // empty salt
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",     // zero iterations
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",    // negative iterations
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k",    // not a number
      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",  // overflow
      "m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",   // mandatory ext
      "e=other-error",
  };
  for (const auto& msg : bad) {
    CAPTURE(msg);
    auto client = rfc_client();
    CHECK(error_of(client.handle_server_first(msg)) == kProtocolError);
  }
}

TEST_CASE("client rejects malformed or out-of-order server-final messages") {
  SUBCASE("server-final before server-first is a protocol_error") {
    auto client = rfc_client();
    CHECK(error_of(client.verify_server_final(kRfcServerFinal)) == kProtocolError);
  }
  SUBCASE("server-first twice is a protocol_error") {
    auto client = rfc_client();
    REQUIRE(client.handle_server_first(kRfcServerFirst).has_value());
    CHECK(error_of(client.handle_server_first(kRfcServerFirst)) == kProtocolError);
  }
  SUBCASE("garbage server-final is a protocol_error") {
    for (const char* msg : {"", "v=", "v=not*base64", "v=AAAA", "x=1", "v"}) {
      CAPTURE(msg);
      auto client = rfc_client();
      REQUIRE(client.handle_server_first(kRfcServerFirst).has_value());
      CHECK(error_of(client.verify_server_final(msg)) == kProtocolError);
    }
  }
  SUBCASE("a wrong server signature is permission_denied") {
    auto client = rfc_client();
    REQUIRE(client.handle_server_first(kRfcServerFirst).has_value());
    CHECK(error_of(client.verify_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")) ==
          kPermissionDenied);
  }
}

TEST_CASE("base64 matches the RFC 4648 test vectors both ways") {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [raw, text] : vectors) {
    CHECK(base64_encode(raw) == text);
    auto decoded = base64_decode(text);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == raw);
  }
}

TEST_CASE("base64 round-trips all byte values") {
  std::string raw;
  for (int i = 0; i < 256; ++i) raw += static_cast<char>(i);
  auto decoded = base64_decode(base64_encode(raw));
  REQUIRE(decoded.has_value());
  CHECK(*decoded == raw);
}

TEST_CASE("base64_decode rejects malformed input") {
  for (const char* text : {"Z", "Zg=", "Zg", "Z===", "====", "=Zg=", "Zg=a", "Zg==Zg==", "Zm9v!",
                           "Zm9 v", "Zm9v\n", "Zm-_"}) {
    CAPTURE(text);
    CHECK(base64_decode(text).has_error());
  }
}

TEST_CASE("random_nonce is base64 of the requested number of random bytes") {
  auto a = random_nonce();
  auto b = random_nonce();
  CHECK(a.size() == 24);
  CHECK(a != b);
  auto decoded = base64_decode(a);
  REQUIRE(decoded.has_value());
  CHECK(decoded->size() == 18);
  CHECK(random_nonce(3).size() == 4);
}

TEST_CASE("make_scram_secret for 'secret' with a fixed salt matches PostgreSQL's format") {
  // Computed independently with Python's hashlib.pbkdf2_hmac / hmac / hashlib.sha256.
  const std::string expected =
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
      "bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=";
  auto made = make_scram_secret("secret", "0123456789abcdef", 4096);
  CHECK(format_scram_secret(made) == expected);
  auto parsed = parse_scram_secret(expected);
  REQUIRE(parsed.has_value());
  CHECK(parsed->iterations == made.iterations);
  CHECK(parsed->salt == made.salt);
  CHECK(parsed->stored_key == made.stored_key);
  CHECK(parsed->server_key == made.server_key);
}

TEST_CASE("parse_scram_secret and format_scram_secret round-trip") {
  auto made = make_scram_secret("pw", {}, 10000);
  CHECK(made.iterations == 10000);
  CHECK(made.salt.size() == 16);
  auto text = format_scram_secret(made);
  auto parsed = parse_scram_secret(text);
  REQUIRE(parsed.has_value());
  CHECK(parsed->iterations == 10000);
  CHECK(parsed->salt == made.salt);
  CHECK(parsed->stored_key == made.stored_key);
  CHECK(parsed->server_key == made.server_key);
  CHECK(format_scram_secret(*parsed) == text);
}

TEST_CASE("a server built from a parsed secret verifies the matching password") {
  auto parsed = parse_scram_secret(format_scram_secret(make_scram_secret("s3cr3t")));
  REQUIRE(parsed.has_value());
  ScramServer server(*parsed);
  ScramClient client("s3cr3t");
  auto server_first = server.handle_client_first(client.client_first());
  REQUIRE(server_first.has_value());
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.has_value());
  CHECK(server.handle_client_final(*client_final).has_value());
}

TEST_CASE("parse_scram_secret rejects malformed secrets") {
  const std::string keys =
      "bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=";
  const std::vector<std::string> bad = {
      "",
      "md596948aad3fcae80c08a35c9b5958cd89",
      "SCRAM-SHA-1$4096:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys,
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==",
      "SCRAM-SHA-256$4096$" + keys,
      "SCRAM-SHA-256$0:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys,
      "SCRAM-SHA-256$-5:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys,
      "SCRAM-SHA-256$abc:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys,
      "SCRAM-SHA-256$:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys,
      "SCRAM-SHA-256$4096:$" + keys,
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg=$" + keys,
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$AAAA:AAAA",
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys.substr(0, 44),
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys + ":extra",
      "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$" + keys + "$",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK(parse_scram_secret(text).has_error());
  }
}

namespace {

ScramKey hmac(const ScramKey& key, std::string_view data) {
  ScramKey out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

ScramKey sha(const ScramKey& k) {
  ScramKey out{};
  unsigned int len = 0;
  EVP_Digest(k.data(), k.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

// A client-final-message for `gs2` + `binding` (what a libpq client bound to the certificate
// would send), with the proof computed from the password's keys.
std::string bound_client_final(const std::string& password, const std::string& client_first,
                               const std::string& server_first, const std::string& gs2,
                               const std::string& binding) {
  const std::string salt_b64 = server_first.substr(
      server_first.find(",s=") + 3, server_first.find(",i=") - server_first.find(",s=") - 3);
  const int iterations = std::stoi(server_first.substr(server_first.find(",i=") + 3));
  const ScramKeys keys = derive_scram_keys(password, base64_decode(salt_b64).value(), iterations);
  const std::string nonce = server_first.substr(2, server_first.find(',') - 2);
  const std::string without_proof = "c=" + base64_encode(gs2 + binding) + ",r=" + nonce;
  const std::string auth =
      client_first.substr(gs2.size()) + "," + server_first + "," + without_proof;
  const ScramKey signature = hmac(sha(keys.client_key), auth);
  ScramKey proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = keys.client_key[i] ^ signature[i];
  return without_proof +
         ",p=" + base64_encode({reinterpret_cast<const char*>(proof.data()), proof.size()});
}

}  // namespace

TEST_CASE("SCRAM-SHA-256-PLUS: the client proves it saw this certificate") {
  const std::string binding = "0123456789abcdef0123456789abcdef";  // a certificate hash
  const std::string gs2 = "p=tls-server-end-point,,";
  const std::string first = gs2 + "n=,r=clientnonce";
  {
    ScramServer server(make_scram_secret("pw"), {}, binding);
    auto server_first = server.handle_client_first(first, true);
    REQUIRE(server_first.has_value());
    auto ok =
        server.handle_client_final(bound_client_final("pw", first, *server_first, gs2, binding));
    CHECK(ok.has_value());
  }
  {
    // Bound to another certificate (a man in the middle terminating TLS): refused.
    ScramServer server(make_scram_secret("pw"), {}, binding);
    auto server_first = server.handle_client_first(first, true);
    REQUIRE(server_first.has_value());
    auto other = server.handle_client_final(
        bound_client_final("pw", first, *server_first, gs2, "another certificate hash......."));
    CHECK(error_of(other) == kProtocolError);
  }
  // A client that says it could bind ("y") while the server offered -PLUS: a downgrade.
  ScramServer offered(make_scram_secret("pw"), {}, binding);
  CHECK(error_of(offered.handle_client_first("y,,n=,r=abc")) == kProtocolError);
  // "y" without TLS is fine; -PLUS without TLS is not.
  ScramServer plain(make_scram_secret("pw"));
  CHECK(plain.handle_client_first("y,,n=,r=abc").has_value());
  ScramServer plain_plus(make_scram_secret("pw"));
  CHECK(error_of(plain_plus.handle_client_first(first, true)) == kProtocolError);
  // -PLUS chosen with a GS2 header that does not bind.
  ScramServer mismatch(make_scram_secret("pw"), {}, binding);
  CHECK(error_of(mismatch.handle_client_first("n,,n=,r=abc", true)) == kProtocolError);
}

TEST_CASE("a successful exchange yields the ClientKey, and keys log in like the password") {
  const ScramSecret secret = make_scram_secret("pass-through");
  ScramServer server(secret);
  ScramClient client("pass-through");
  auto server_first = server.handle_client_first(client.client_first());
  REQUIRE(server_first.has_value());
  auto client_final = client.handle_server_first(*server_first);
  REQUIRE(client_final.has_value());
  REQUIRE(server.handle_client_final(*client_final).has_value());
  const ScramKeys expected = derive_scram_keys("pass-through", secret.salt, secret.iterations);
  CHECK(server.client_key() == expected.client_key);

  // A second server login with only {ClientKey, ServerKey} (no password) succeeds.
  ScramServer again(secret);
  ScramClient keys_only("");
  auto first = again.handle_client_first(keys_only.client_first());
  REQUIRE(first.has_value());
  auto parsed = keys_only.parse_server_first(*first);
  REQUIRE(parsed.has_value());
  CHECK(parsed->iterations == secret.iterations);
  const std::string final_msg = keys_only.client_final(
      {secret.salt, secret.iterations, server.client_key(), secret.server_key});
  auto server_final = again.handle_client_final(final_msg);
  REQUIRE(server_final.has_value());
  CHECK(keys_only.verify_server_final(*server_final).has_value());
}

TEST_CASE("mock secrets: the same salt for the same user, nothing that verifies") {
  const ScramSecret a = mock_scram_secret("ghost", "instance-key");
  const ScramSecret b = mock_scram_secret("ghost", "instance-key");
  const ScramSecret other = mock_scram_secret("other", "instance-key");
  CHECK(a.salt == b.salt);  // asking twice does not reveal the user is made up
  CHECK(a.salt != other.salt);
  CHECK(a.salt.size() == 16);
  CHECK(a.stored_key != b.stored_key);
  ScramServer server(a);
  ScramClient client("any password");
  auto first = server.handle_client_first(client.client_first());
  REQUIRE(first.has_value());
  auto final_msg = client.handle_server_first(*first);
  REQUIRE(final_msg.has_value());
  CHECK(error_of(server.handle_client_final(*final_msg)) == kPermissionDenied);
}
