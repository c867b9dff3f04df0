// Stream over TLS on a loopback socket pair: handshakes both ways, data both ways through
// Asio's composed writes, host name checks, TLS input the socket no longer shows, and the
// TLS settings' validation (key permissions, missing files) in the config.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "pooler/config/config.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/net/stream.hpp"

using namespace pgmux::pooler;

namespace {

// A self-signed certificate for "localhost" (its own CA) and its key, as PEM files.
struct TestCert {
  std::filesystem::path dir, cert, key;
  explicit TestCert(const std::string& cn = "localhost") {
    dir = std::filesystem::temp_directory_path() /
          ("pgmux-unit-tls-" + std::to_string(::getpid()) + "-" + cn);
    std::filesystem::create_directories(dir);
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_EC_gen("P-256"), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
    X509_set_pubkey(x.get(), pkey.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost"},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(x.get(), ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(x.get(), pkey.get(), EVP_sha256());
    FILE* f = std::fopen(cert.c_str(), "w");
    PEM_write_X509(f, x.get());
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    ::chmod(key.c_str(), 0600);
  }
  ~TestCert() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

struct TlsPair {
  asio::io_context io{1};
  std::unique_ptr<FramedSocket> server, client;  // pgmux accepting, pgmux connecting

  TlsPair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    Socket connecting(io);
    connecting.connect(acceptor.local_endpoint());
    client = std::make_unique<FramedSocket>(std::move(connecting), 1 << 20);
    server = std::make_unique<FramedSocket>(acceptor.accept(io.get_executor()), 1 << 20);
  }
  // Both handshakes; returns the client side's error ("" when both succeeded).
  std::string handshake(const TlsContext& accept_ctx, const TlsContext& connect_ctx,
                        const std::string& host);
};

// Coroutines, not capturing lambdas: a lambda's captures live in its closure, which a
// co_spawn of a temporary lambda would outlive.
awaitable<void> accept_tls(FramedSocket& s, const TlsContext& ctx) {
  try {
    co_await s.stream().tls_accept(ctx.get());
  } catch (const std::exception&) {
  }
}

awaitable<void> connect_tls(FramedSocket& s, const TlsContext& ctx, const std::string& host,
                            std::string& error) {
  try {
    co_await s.stream().tls_connect(ctx.get(), host, true);
    error.clear();
  } catch (const std::exception& e) {
    error = e.what();
  }
}

awaitable<void> send(FramedSocket& s, std::string_view bytes) {
  co_await s.write(bytes);
}

awaitable<void> receive_some(FramedSocket& s, std::string& got) {
  auto [ec, n] = co_await s.read_some();
  if (!ec) got.assign(s.buffer().unread());
}

std::string TlsPair::handshake(const TlsContext& accept_ctx, const TlsContext& connect_ctx,
                               const std::string& host) {
  std::string client_error = "(did not finish)";
  asio::co_spawn(io, accept_tls(*server, accept_ctx), asio::detached);
  asio::co_spawn(io, connect_tls(*client, connect_ctx, host, client_error), asio::detached);
  io.run_for(std::chrono::seconds(5));
  io.restart();
  return client_error;
}

std::shared_ptr<const TlsContext> accepting(const TestCert& c) {
  return TlsContext::for_clients(
      {.mode = TlsMode::require, .cert_file = c.cert.string(), .key_file = c.key.string()});
}

std::shared_ptr<const TlsContext> connecting(const TestCert& c) {
  return TlsContext::for_servers({.mode = TlsMode::verify_full, .ca_file = c.cert.string()});
}

// Reads from `from` into `got` until `bytes` bytes arrived or the stream fails.
awaitable<void> read_into(FramedSocket& from, std::size_t bytes, std::string& got) {
  while (got.size() < bytes) {
    auto [ec, n] = co_await from.read_some();
    if (ec) co_return;
    got.append(from.buffer().unread());
    from.buffer().consume(from.buffer().size());
  }
}

}  // namespace

TEST_CASE("TLS streams carry data both ways, in writes larger than a record") {
  const TestCert cert;
  TlsPair p;
  REQUIRE(p.handshake(*accepting(cert), *connecting(cert), "localhost").empty());
  CHECK(p.server->stream().is_tls());
  CHECK(p.client->stream().tls_description().starts_with("TLSv1.3/"));

  std::string big(1'000'000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 % 251);
  std::string to_server, to_client;
  asio::co_spawn(p.io, send(*p.client, big), asio::detached);
  asio::co_spawn(p.io, send(*p.server, "reply"), asio::detached);
  asio::co_spawn(p.io, read_into(*p.server, big.size(), to_server), asio::detached);
  asio::co_spawn(p.io, receive_some(*p.client, to_client), asio::detached);
  p.io.run_for(std::chrono::seconds(10));
  CHECK(to_server.size() == big.size());
  CHECK(to_server == big);
  CHECK(to_client == "reply");
}

TEST_CASE("verify-full refuses a certificate for another host") {
  const TestCert cert;
  TlsPair p;
  const std::string error = p.handshake(*accepting(cert), *connecting(cert), "db.example.com");
  CHECK_MESSAGE(error.find("hostname mismatch") != std::string::npos, error);
  TlsPair q;
  const TestCert other("other");  // a CA the client does not trust
  const std::string untrusted = q.handshake(*accepting(other), *connecting(cert), "localhost");
  CHECK_MESSAGE(untrusted.find("certificate") != std::string::npos, untrusted);
}

TEST_CASE("TLS input the socket no longer shows is reported as buffered, and read first") {
  const TestCert cert;
  TlsPair p;
  REQUIRE(p.handshake(*accepting(cert), *connecting(cert), "localhost").empty());
  asio::co_spawn(p.io, send(*p.client, "0123456789"), asio::detached);
  p.io.run_for(std::chrono::milliseconds(200));
  p.io.restart();
  // Take two bytes of the ten-byte record: the rest is decrypted and held by OpenSSL.
  std::array<char, 2> two{};
  boost::system::error_code ec;
  std::size_t n = 0;
  for (int i = 0; i < 50 && n == 0; ++i) {
    n = p.server->stream().read_some(asio::buffer(two), ec);
    if (ec == asio::error::would_block) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(n == 2);
  CHECK(std::string(two.data(), 2) == "01");
  CHECK(p.server->stream().has_buffered_input());
  // read_some must not wait for the socket (nothing more will arrive there).
  std::string rest;
  asio::co_spawn(p.io, read_into(*p.server, 8, rest), asio::detached);
  p.io.run_for(std::chrono::milliseconds(500));
  CHECK(rest == "23456789");
  CHECK_FALSE(p.server->stream().has_buffered_input());
}

TEST_CASE("a private key others can read is refused, as PostgreSQL refuses it") {
  const TestCert cert;
  ::chmod(cert.key.c_str(), 0644);
  std::string error;
  try {
    (void)accepting(cert);
  } catch (const TlsError& e) {
    error = e.what();
  }
  CHECK_MESSAGE(error.find("group or world access") != std::string::npos, error);
}

TEST_CASE("TLS settings in the config: defaults, per-database overrides, clear errors") {
  const TestCert cert;
  const std::string base =
      "[databases.app]\nprimary = { host = \"127.0.0.1\", port = 5432 }\n"
      "[users.app]\npassword = \"secret\"\n";
  auto c = load_config_from_string(base, "t.toml");
  CHECK(c->general.client_tls.mode == TlsMode::disable);
  CHECK(c->client_tls_context == nullptr);
  CHECK(c->find_database("app")->server_tls.mode == TlsMode::prefer);
  CHECK(c->find_database("app")->server_tls_context != nullptr);

  auto over = load_config_from_string(
      "[pgmux]\nserver_tls_mode = \"disable\"\n" + base +
          "[databases.secure]\nprimary = { host = \"localhost\", port = 5432 }\n"
          "server_tls_mode = \"verify-full\"\nserver_tls_ca_file = \"" +
          cert.cert.string() + "\"\n",
      "t.toml");
  CHECK(over->find_database("app")->server_tls_context == nullptr);
  CHECK(over->find_database("secure")->server_tls.mode == TlsMode::verify_full);
  CHECK(over->find_database("secure")->server_tls_context != nullptr);

  auto error_of = [&](const std::string& text) -> std::string {
    try {
      (void)load_config_from_string(text, "t.toml");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of("[pgmux]\nserver_tls_mode = \"verify-full\"\n" + base)
            .find("needs server_tls_ca_file") != std::string::npos);
  CHECK(error_of("[pgmux]\nclient_tls_mode = \"require\"\n" + base).find("client_tls_cert_file") !=
        std::string::npos);
  CHECK(error_of("[pgmux]\nclient_tls_mode = \"sometimes\"\n" + base).find("client_tls_mode") !=
        std::string::npos);
  CHECK(error_of("[pgmux]\nclient_tls_mode = \"require\"\nclient_tls_cert_file = \"/nonexistent."
                 "crt\"\nclient_tls_key_file = \"/nonexistent.key\"\n" +
                 base)
            .find("/nonexistent.crt") != std::string::npos);
}
