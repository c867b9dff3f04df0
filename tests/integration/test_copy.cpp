// COPY through pgmux: libpq COPY FROM STDIN / TO STDOUT, psql \copy, and an aborted COPY.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "command.hpp"
#include "pgmux_process.hpp"
#include "pq_client.hpp"

using namespace pgmux::it;

namespace {

// Rows "id<TAB>payload\n" for ids 1..n, in COPY text format.
std::string copy_rows(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) {
    s += std::to_string(i) + "\tpayload-" + std::to_string(i) + "-" + std::string(i % 37, 'z') +
         "\n";
  }
  return s;
}

// FNV-1a, enough to compare two byte streams.
std::uint64_t checksum(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("COPY FROM STDIN of 10,000 rows and COPY TO STDOUT give the same data back") {
  PgmuxProcess px(test_env(), {.name = "copy"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  c.run("DROP TABLE IF EXISTS it_copy");
  c.run("CREATE TABLE it_copy(id int PRIMARY KEY, payload text NOT NULL)");

  constexpr int kRows = 10000;
  const std::string data = copy_rows(kRows);
  const PgResult start = c.exec("COPY it_copy FROM STDIN");
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_IN, start.describe());
  // Send in uneven chunks that cut rows in the middle, as a real client might.
  for (std::size_t off = 0; off < data.size();) {
    const std::size_t n = std::min<std::size_t>(7919, data.size() - off);
    REQUIRE(PQputCopyData(c.get(), data.data() + off, static_cast<int>(n)) == 1);
    off += n;
  }
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  const PgResult done = c.next_result();
  REQUIRE_MESSAGE(done.status() == PGRES_COMMAND_OK, done.describe());
  CHECK(done.cmd_tuples() == std::to_string(kRows));
  CHECK_FALSE(c.next_result());
  CHECK(c.tx_status() == PQTRANS_IDLE);

  CHECK(c.query_value("SELECT count(*) FROM it_copy") == std::to_string(kRows));
  CHECK(c.query_value("SELECT sum(id) FROM it_copy") == "50005000");

  const PgResult out = c.exec("COPY (SELECT id, payload FROM it_copy ORDER BY id) TO STDOUT");
  REQUIRE_MESSAGE(out.status() == PGRES_COPY_OUT, out.describe());
  std::string received;
  int lines = 0;
  for (std::string row;;) {
    const int n = c.copy_out_row(row);
    if (n < 0) {
      CHECK(n == -1);  // -2 would be an error
      break;
    }
    received += row;
    ++lines;
  }
  const PgResult out_done = c.next_result();
  CHECK_MESSAGE(out_done.status() == PGRES_COMMAND_OK, out_done.describe());
  CHECK(out_done.cmd_tuples() == std::to_string(kRows));
  CHECK_FALSE(c.next_result());
  CHECK(lines == kRows);
  CHECK(received.size() == data.size());
  CHECK(checksum(received) == checksum(data));
  CHECK(c.query_value("SELECT 'after copy'") == "after copy");
  c.run("DROP TABLE it_copy");
}

TEST_CASE("psql \\copy works in both directions through pgmux") {
  PgmuxProcess px(test_env(), {.name = "psqlcopy"});
  INFO(px.log_tail());
  {
    PgConn c(px.conninfo("app", "secret"));
    REQUIRE_MESSAGE(c.ok(), c.error());
    c.run("DROP TABLE IF EXISTS it_psql_copy");
    c.run("CREATE TABLE it_psql_copy(id int, payload text)");
  }
  const auto stem = test_env().unique_stem("psqlcopy-data");
  const std::filesystem::path in_file = stem.string() + ".in", out_file = stem.string() + ".out";
  const std::string data = copy_rows(2500);
  std::ofstream(in_file, std::ios::binary) << data;

  const std::vector<std::string> base = {test_env().tool("psql"),
                                         "-X",
                                         "-h",
                                         "127.0.0.1",
                                         "-p",
                                         std::to_string(px.port()),
                                         "-U",
                                         "app",
                                         "-d",
                                         "app",
                                         "-v",
                                         "ON_ERROR_STOP=1"};
  const std::vector<std::string> env = {"PGPASSWORD=secret", "PGSSLMODE=disable"};

  auto args = base;
  args.insert(args.end(), {"-c", "\\copy it_psql_copy FROM '" + in_file.string() + "'"});
  const CommandResult in = run_command({.argv = args, .env = env});
  INFO("copy in: ", in.describe());
  CHECK(in.exit_code == 0);
  CHECK(in.out.find("COPY 2500") != std::string::npos);

  args = base;
  args.insert(args.end(), {"-c", "\\copy (SELECT * FROM it_psql_copy ORDER BY id) TO '" +
                                     out_file.string() + "'"});
  const CommandResult out = run_command({.argv = args, .env = env});
  INFO("copy out: ", out.describe());
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("COPY 2500") != std::string::npos);
  const std::string back = read_file(out_file);
  CHECK(back.size() == data.size());
  CHECK(checksum(back) == checksum(data));

  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  CHECK(c.query_value("SELECT count(*) FROM it_psql_copy") == "2500");
  c.run("DROP TABLE it_psql_copy");
}

TEST_CASE("an aborted COPY FROM STDIN reports an error and the connection stays usable") {
  PgmuxProcess px(test_env(), {.name = "copyabort"});
  INFO(px.log_tail());
  PgConn c(px.conninfo("app", "secret"));
  REQUIRE_MESSAGE(c.ok(), c.error());
  c.run("CREATE TEMP TABLE ca(id int, payload text)");
  const std::string server_pid = c.query_value("SELECT pg_backend_pid()");

  const PgResult start = c.exec("COPY ca FROM STDIN");
  REQUIRE_MESSAGE(start.status() == PGRES_COPY_IN, start.describe());
  const std::string data = copy_rows(1000);
  REQUIRE(PQputCopyData(c.get(), data.data(), static_cast<int>(data.size())) == 1);
  REQUIRE(PQputCopyEnd(c.get(), "abort requested by the test") == 1);
  const PgResult r = c.next_result();
  CHECK(r.status() == PGRES_FATAL_ERROR);
  CHECK(r.sqlstate() == "57014");
  CHECK(r.error().find("abort requested by the test") != std::string::npos);
  CHECK_FALSE(c.next_result());
  CHECK(c.tx_status() == PQTRANS_IDLE);

  CHECK(c.query_value("SELECT count(*) FROM ca") == "0");
  CHECK(c.query_value("SELECT pg_backend_pid()") == server_pid);  // same session
  // A COPY after the aborted one works.
  const PgResult again = c.exec("COPY ca FROM STDIN");
  REQUIRE_MESSAGE(again.status() == PGRES_COPY_IN, again.describe());
  const std::string row = "1\tone\n";
  REQUIRE(PQputCopyData(c.get(), row.data(), static_cast<int>(row.size())) == 1);
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  CHECK(c.next_result().cmd_tuples() == "1");
  CHECK_FALSE(c.next_result());
  CHECK(c.query_value("SELECT payload FROM ca") == "one");
}
