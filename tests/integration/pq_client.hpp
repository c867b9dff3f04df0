// Small RAII wrappers around libpq's PGconn and PGresult.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgmux::it {

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : r_(r) {}

  [[nodiscard]] PGresult* get() const { return r_.get(); }
  [[nodiscard]] explicit operator bool() const { return r_ != nullptr; }
  [[nodiscard]] ExecStatusType status() const;
  [[nodiscard]] std::string status_name() const;
  [[nodiscard]] bool ok() const;  // PGRES_COMMAND_OK or PGRES_TUPLES_OK
  [[nodiscard]] std::string sqlstate() const;
  [[nodiscard]] std::string error() const;
  [[nodiscard]] int rows() const;
  [[nodiscard]] int cols() const;
  [[nodiscard]] std::string value(int row, int col) const;
  [[nodiscard]] bool is_null(int row, int col) const;
  [[nodiscard]] std::string cmd_tuples() const;
  // "PGRES_X sqlstate: message", for failure output.
  [[nodiscard]] std::string describe() const;

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> r_;
};

class PgConn {
 public:
  PgConn() = default;
  // Blocking connect (bounded by connect_timeout in `conninfo`); never throws: check ok() and
  // error(). Notices (e.g. from DROP … IF EXISTS) are discarded rather than printed.
  explicit PgConn(const std::string& conninfo);

  [[nodiscard]] PGconn* get() const { return c_.get(); }
  [[nodiscard]] bool ok() const;
  [[nodiscard]] std::string error() const;
  [[nodiscard]] PGTransactionStatusType tx_status() const;

  // Every wait for the server is bounded: a hang in pgmux must fail a test, not stall the run.
  // Waits that run out throw std::runtime_error.
  static constexpr std::chrono::milliseconds kDefaultBound{60000};

  // Like PQexec (the last result; stops at COPY), but with PQsendQuery and a bounded wait.
  PgResult exec(const std::string& sql, std::chrono::milliseconds bound = kDefaultBound);
  // Like PQexecParams, bounded.
  PgResult exec_params(const std::string& sql,
                       const std::vector<std::optional<std::string>>& params,
                       int result_format = 0);
  // After a PQsend* call: collects results as PQexec does, bounded. A failed send (`sent`
  // false) yields a PGRES_FATAL_ERROR result carrying the connection's error message.
  PgResult collect(bool sent, std::chrono::milliseconds bound = kDefaultBound);
  // The single value of a one-row, one-column result; throws std::runtime_error otherwise.
  std::string query_value(const std::string& sql);
  // Runs a command and throws std::runtime_error unless it succeeds.
  void run(const std::string& sql);
  // Next result of an asynchronous query (PQgetResult), bounded; empty at the end of a query.
  PgResult next_result(std::chrono::milliseconds bound = kDefaultBound);
  // One PQgetCopyData row, bounded: its length (row in `out`), -1 at the end, -2 on error.
  int copy_out_row(std::string& out, std::chrono::milliseconds bound = kDefaultBound);

  void close() { c_.reset(); }

 private:
  // Waits until PQisBusy is false; throws when `bound` runs out.
  void wait_not_busy(std::chrono::milliseconds bound);

  struct Finish {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  std::unique_ptr<PGconn, Finish> c_;
};

// Owns a PGcancel from PQgetCancel.
class PgCancel {
 public:
  explicit PgCancel(const PgConn& conn) : c_(PQgetCancel(conn.get())) {}
  [[nodiscard]] bool valid() const { return c_ != nullptr; }
  // PQcancel; returns "" on success, libpq's message otherwise.
  std::string cancel() const;

 private:
  struct Free {
    void operator()(PGcancel* c) const { PQfreeCancel(c); }
  };
  std::unique_ptr<PGcancel, Free> c_;
};

// Why the first use of a connection failed: at login (pgmux may need a server to greet the
// client) or at its first query ("SQLSTATE message"). Empty if it did not fail.
[[nodiscard]] std::string first_failure(PgConn& c);

}  // namespace pgmux::it
