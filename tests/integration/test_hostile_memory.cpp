// Memory follows bytes received, not lengths declared: PostgreSQL's 10,000-byte startup limit,
// and floods of unauthenticated connections (huge claimed startup packets, half-sent packets,
// SCRAM exchanges abandoned half-way) that must leave pgmux's RSS nearly flat while a real
// client still logs in and queries.
#include <doctest/doctest.h>

#include <cstdlib>

#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "admin_stats.hpp"
#include "helpers.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"
#include "raw_client.hpp"

using namespace pgmux::it;
using std::chrono::milliseconds;

namespace {

constexpr std::uint32_t kProtocol3 = 196608;
constexpr int kFloodSize = 1000;
// RSS growth allowed while a flood is connected, and after three. Before issue 12 each of these
// connections committed its claimed 60 MB; now a rejected one costs its session for the 100 ms
// drain (~8 kB at the burst's peak), which glibc keeps in the heap of whichever worker thread
// ran it, so the bound leaves room for two workers' peaks rather than one.
constexpr long kFloodBoundKb = 32 * 1024;

std::string startup_claiming(std::uint32_t length) {
  return be32(length) + be32(kProtocol3) + std::string("user\0", 5);
}

// SASLInitialResponse choosing SCRAM-SHA-256 with a client-first-message.
std::string sasl_initial_response() {
  const std::string first = "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
  std::string body = std::string("SCRAM-SHA-256\0", 14) + be32(first.size()) + first;
  return "p" + be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

// Opens kFloodSize raw connections, each brought to a stop by `stall`; checks pgmux's RSS
// while they are all connected and that a real client is served meanwhile.
void check_flood(PgmuxProcess& px, const char* what, const std::function<void(RawClient&)>& stall) {
  const std::string flood_kind = what;
  CAPTURE(flood_kind);
  const long before_kb = px.rss_kb();
  std::vector<std::unique_ptr<RawClient>> flood;
  flood.reserve(kFloodSize);
  for (int i = 0; i < kFloodSize; ++i) {
    flood.push_back(std::make_unique<RawClient>(px.port()));
    stall(*flood.back());
  }
  std::this_thread::sleep_for(milliseconds(300));  // let pgmux read all of it
  const long during_kb = px.rss_kb();
  PgConn normal(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(normal.ok(), normal.error());
  CHECK(normal.query_value("SELECT 'served during the flood'") == "served during the flood");
  MESSAGE(std::string(what), ": RSS ", before_kb, " kB before, ", during_kb, " kB with ",
          kFloodSize, " connections (", (during_kb - before_kb) * 1024 / kFloodSize, " B each)");
  CHECK(during_kb - before_kb < kFloodBoundKb);
  flood.clear();
  CHECK(px.running());
}

}  // namespace

TEST_CASE("a startup packet over PostgreSQL's 10,000 bytes is refused with 08P01") {
  PgmuxProcess px(test_env(), {.name = "startup-limit"});
  INFO(px.log_tail());
  for (const std::uint32_t claimed : {10'005U, 60'000'000U}) {
    CAPTURE(claimed);
    RawClient raw(px.port());
    REQUIRE(raw.send(startup_claiming(claimed)));
    RawClient::Message m;
    REQUIRE(raw.read_message(m, milliseconds(5000)) == RawClient::Status::data);
    CHECK(m.tag == 'E');
    CHECK(error_field(m.body, 'C') == "08P01");
    CHECK(error_field(m.body, 'M').find("invalid length of startup packet") != std::string::npos);
  }
  // Exactly 10,000 bytes of body is still a startup packet: pgmux goes on to authentication.
  const std::string head = be32(kProtocol3) + std::string("user\0app\0database\0app\0", 22) +
                           std::string("application_name\0", 17);
  const std::string value(10'000 - head.size() - 2, 'a');
  const std::string body = head + value + std::string("\0\0", 2);
  REQUIRE(body.size() == 10'000);
  RawClient raw(px.port());
  REQUIRE(raw.send(be32(static_cast<std::uint32_t>(body.size() + 4)) + body));
  RawClient::Message m;
  REQUIRE(raw.read_message(m, milliseconds(5000)) == RawClient::Status::data);
  CHECK(m.tag == 'R');  // an authentication request (SASL for app)
}

TEST_CASE("an authentication message over 8 kB is refused with 08P01") {
  PgmuxProcess px(test_env(), {.name = "auth-limit"});
  INFO(px.log_tail());
  RawClient raw(px.port());
  REQUIRE(raw.send(startup_packet({{"user", "app"}, {"database", "app"}})));
  RawClient::Message m;
  REQUIRE(raw.read_message(m, milliseconds(5000)) == RawClient::Status::data);
  REQUIRE(m.tag == 'R');
  REQUIRE(raw.send("p" + be32(50'000'000U)));
  REQUIRE(raw.read_message(m, milliseconds(5000)) == RawClient::Status::data);
  CHECK(m.tag == 'E');
  CHECK(error_field(m.body, 'C') == "08P01");
}

TEST_CASE("floods of unauthenticated connections leave RSS nearly flat and clients served") {
  PgmuxOptions o{.name = "flood", .max_client_conn = 5000};
  PgmuxProcess px(test_env(), o);
  INFO(px.log_tail());
  {
    PgConn warm(px.conninfo("app", "secret"));  // the pool's first login is not flood cost
    REQUIRE_MESSAGE(warm.ok(), warm.error());
    CHECK(warm.query_value("SELECT 1") == "1");
  }
  const long baseline_kb = px.rss_kb();
  check_flood(px, "startup claiming 60 MB",
              [](RawClient& c) { REQUIRE(c.send(startup_claiming(60'000'000U))); });
  check_flood(px, "half a startup packet", [](RawClient& c) {
    const std::string full = startup_packet({{"user", "app"}, {"database", "app"}});
    REQUIRE(c.send(full.substr(0, full.size() / 2)));
  });
  check_flood(px, "SCRAM abandoned after client-first", [](RawClient& c) {
    REQUIRE(c.send(startup_packet({{"user", "app"}, {"database", "app"}})));
    RawClient::Message m;
    REQUIRE(c.read_message(m, milliseconds(5000)) == RawClient::Status::data);
    REQUIRE(m.tag == 'R');
    REQUIRE(c.send(sasl_initial_response()));
    REQUIRE(c.read_message(m, milliseconds(5000)) == RawClient::Status::data);
    REQUIRE(m.tag == 'R');  // SASLContinue: the client never answers it
  });
  std::this_thread::sleep_for(milliseconds(300));
  const long after_kb = px.rss_kb();
  MESSAGE("RSS baseline ", baseline_kb, " kB, after three floods ", after_kb, " kB");
  CHECK(after_kb - baseline_kb < kFloodBoundKb);
  PgConn after(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(after.query_value("SELECT 'after'") == "after");
}

TEST_CASE("a Bind over max_message_size_bytes streams through; a Query held whole is limited") {
  for (const char* mode : {"transaction", "session"}) {
    CAPTURE(mode);
    PgmuxOptions o{.name = std::string("big-bind-") + mode,
                   .mode = mode,
                   .pgmux_toml = "max_message_size_bytes = 1048576"};
    PgmuxProcess px(test_env(), o);
    INFO(px.log_tail());
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    const std::string big(6 * 1024 * 1024, 'b');  // 6 MB, six times the limit
    const char* values[1] = {big.c_str()};
    // Named: pgmux rewrites the statement name in the Bind's head only.
    const PgResult prep =
        c.collect(PQsendPrepare(c.get(), "measure", "SELECT length($1::text)", 1, nullptr));
    REQUIRE_MESSAGE(prep.status() == PGRES_COMMAND_OK, prep.describe());
    for (int i = 0; i < 3; ++i) {
      const PgResult r =
          c.collect(PQsendQueryPrepared(c.get(), "measure", 1, values, nullptr, nullptr, 0));
      REQUIRE_MESSAGE(r.status() == PGRES_TUPLES_OK, r.describe());
      CHECK(r.value(0, 0) == std::to_string(big.size()));
    }
    // Unnamed, as most drivers send parameters.
    const PgResult unnamed = c.exec_params("SELECT md5($1::text)", {big});
    REQUIRE_MESSAGE(unnamed.ok(), unnamed.describe());
    CHECK(unnamed.value(0, 0).size() == 32);
    CHECK(c.query_value("SELECT 'still here'") == "still here");
    // Transaction pooling holds a Query whole to route and inspect it: over the limit it is
    // refused. Session pooling reads only its head and relays it, at any size.
    const PgResult query = c.exec("SELECT length('" + big + "')");
    if (std::string(mode) == "transaction") {
      INFO(query.describe());
      CHECK_FALSE(query.ok());
      CHECK(query.sqlstate() == "08P01");
    } else {
      REQUIRE_MESSAGE(query.ok(), query.describe());
      CHECK(query.value(0, 0) == std::to_string(big.size()));
    }
    CHECK(px.running());
  }
}

TEST_CASE("idle clients and idle pooled servers hold no receive buffer") {
  for (const char* mode : {"transaction", "session"}) {
    CAPTURE(mode);
    PgmuxOptions o{.name = std::string("idle-buffers-") + mode,
                   .pool_size = 10,
                   .max_client_conn = 2000,
                   .mode = mode};
    PgmuxProcess px(test_env(), o);
    INFO(px.log_tail());
    constexpr int kClients = 1000;
    std::vector<std::unique_ptr<PgConn>> clients;
    const long before_kb = px.rss_kb();
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(std::make_unique<PgConn>(px.conninfo("app", "secret")));
      REQUIRE_MESSAGE(clients.back()->ok(), clients.back()->error());
      // In session mode only the first 10 get a server; the rest log in and stay idle.
      if (std::string(mode) == "transaction" || i < 10) {
        CHECK(clients.back()->query_value("SELECT 'busy once'") == "busy once");
      }
      if (std::string(mode) == "transaction") {
        const PgResult prep = clients.back()->collect(
            PQsendPrepare(clients.back()->get(), "q", "SELECT $1::int", 1, nullptr));
        CHECK(prep.status() == PGRES_COMMAND_OK);
      }
    }
    // Each client parks its session state after its last reply has gone out: wait for that.
    const std::string parked_turns = std::string(mode) == "transaction" ? "0" : "10";
    std::map<std::string, std::map<std::string, std::string>> mem;
    const auto parked = [&] {
      mem.clear();
      for (const auto& row : console_rows(px, "SHOW MEM")) mem[row.at("name")] = row;
      return mem.contains("turn_states") && mem["turn_states"].at("used") == parked_turns;
    };
    CHECK(wait_until(parked, milliseconds(5000)));
    const long after_kb = px.rss_kb();
    REQUIRE(mem.contains("buffers"));
    // Only the console's own request holds a buffer while SHOW MEM runs.
    CHECK(std::stoll(mem["buffers"].at("used")) <= 1);
    CHECK(std::stoll(mem["buffers_other"].at("used")) == 0);
    // Awake or, once idle past client_dormant_after_ms, dormant.
    CHECK(std::stoll(mem["client_sessions"].at("used")) +
              std::stoll(mem["dormant_clients"].at("used")) ==
          kClients);
    // Parked clients hold no active-session state either, but for the session-mode clients
    // that keep a server (their server loops wait on it).
    CHECK(mem["turn_states"].at("used") == parked_turns);
    if (std::string(mode) == "transaction") {
      // Each client's statement definition is counted with the bytes it holds.
      CHECK(mem["client_statements"].at("used") == std::to_string(kClients));
      CHECK(std::stoll(mem["client_statements"].at("memtotal")) > 30 * kClients);
    }
    MESSAGE(std::string(mode), ": ", kClients, " idle clients: RSS +", after_kb - before_kb,
            " kB (", (after_kb - before_kb) * 1024 / kClients, " B each); buffers lent ",
            mem["buffers"].at("used"), ", free ", mem["buffers"].at("free"));
    // A parked client holds its session objects and one reactor operation, no coroutine frame
    // and no buffer (10.8 kB in transaction mode and 7.5 kB in session mode before parking).
    // Under a sanitizer (PGMUX_TEST_BINARY) RSS measures its shadow memory instead.
    if (std::getenv("PGMUX_TEST_BINARY") == nullptr) {
      CHECK((after_kb - before_kb) * 1024 / kClients < 4096);
    }
  }
}

TEST_CASE("RSS returns near its baseline after a crowd of clients has left") {
  PgmuxProcess px(test_env(), {.name = "crowd", .pool_size = 4, .mode = "transaction"});
  INFO(px.log_tail());
  {
    PgConn warm(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(warm.ok(), warm.error());
    CHECK(warm.query_value("SELECT 1") == "1");
  }
  const long baseline_kb = px.rss_kb();
  long crowd_kb = 0;
  // An idle client costs little now, so each one also defines an 8 kB statement: memory that
  // must go when its client does.
  constexpr int kCrowd = 1000;
  const std::string statement = "SELECT $1::int /* " + std::string(8000, 'x') + " */";
  {
    std::vector<std::unique_ptr<PgConn>> crowd;
    for (int i = 0; i < kCrowd; ++i) {
      crowd.push_back(std::make_unique<PgConn>(px.conninfo("app", "secret")));
      REQUIRE_MESSAGE(crowd.back()->ok(), crowd.back()->error());
      PGconn* conn = crowd.back()->get();
      const PgResult prep =
          crowd.back()->collect(PQsendPrepare(conn, "big", statement.c_str(), 1, nullptr));
      REQUIRE(prep.status() == PGRES_COMMAND_OK);
    }
    CHECK(crowd.back()->query_value("SELECT 'last'") == "last");
    crowd_kb = px.rss_kb();
  }
  // pgmux gives the freed pages back within a few seconds of the count dropping; what stays
  // is heap pages that still hold a few live bytes. TLS clients (the suite's client-TLS run)
  // leave more of them: OpenSSL builds each session from many small allocations. Measured
  // after plain clients: 3.4-4.8 MB (three runs each at 2f62ea0 and at 6d0becd, 2026-12-06;
  // the 4 MB bound this test had failed on unchanged code), after TLS ones 1.6-5.2 MB. The
  // bound still fails if the crowd's 8 MB of statements stayed.
  const long allowed_kb = 6 * 1024;
  const long crowd_cost_kb = crowd_kb - baseline_kb;
  const bool returned =
      wait_until([&] { return px.rss_kb() - baseline_kb < allowed_kb; }, milliseconds(8000));
  MESSAGE("RSS baseline ", baseline_kb, " kB, with ", kCrowd, " clients ", crowd_kb, " kB, after ",
          px.rss_kb(), " kB");
  CHECK(crowd_cost_kb > 8 * 1024);  // the crowd did cost memory
  CHECK(returned);
}
