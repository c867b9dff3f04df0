// libpq wrappers.
#include "pq_client.hpp"

#include <poll.h>

#include <stdexcept>

namespace pgmux::it {

ExecStatusType PgResult::status() const {
  return r_ ? PQresultStatus(r_.get()) : PGRES_FATAL_ERROR;
}

std::string PgResult::status_name() const {
  return r_ ? PQresStatus(status()) : "(no result)";
}

bool PgResult::ok() const {
  return status() == PGRES_COMMAND_OK || status() == PGRES_TUPLES_OK;
}

std::string PgResult::sqlstate() const {
  const char* s = r_ ? PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE) : nullptr;
  return s ? s : "";
}

std::string PgResult::error() const {
  return r_ ? PQresultErrorMessage(r_.get()) : "";
}

int PgResult::rows() const {
  return r_ ? PQntuples(r_.get()) : 0;
}

int PgResult::cols() const {
  return r_ ? PQnfields(r_.get()) : 0;
}

std::string PgResult::value(int row, int col) const {
  if (row >= rows() || col >= cols()) {
    throw std::out_of_range("no value at (" + std::to_string(row) + ", " + std::to_string(col) +
                            ") in " + describe());
  }
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
}

bool PgResult::is_null(int row, int col) const {
  return r_ && PQgetisnull(r_.get(), row, col) != 0;
}

std::string PgResult::cmd_tuples() const {
  return r_ ? PQcmdTuples(r_.get()) : "";
}

std::string PgResult::describe() const {
  std::string s = status_name();
  if (!sqlstate().empty()) s += " " + sqlstate();
  if (!error().empty()) s += ": " + error();
  return s;
}

PgConn::PgConn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
  if (c_)
    PQsetNoticeProcessor(
        c_.get(), [](void*, const char*) {}, nullptr);
}

bool PgConn::ok() const {
  return c_ && PQstatus(c_.get()) == CONNECTION_OK;
}

std::string PgConn::error() const {
  return c_ ? PQerrorMessage(c_.get()) : "(no connection)";
}

PGTransactionStatusType PgConn::tx_status() const {
  return c_ ? PQtransactionStatus(c_.get()) : PQTRANS_UNKNOWN;
}

void PgConn::wait_not_busy(std::chrono::milliseconds bound) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + bound;
  while (PQisBusy(c_.get()) != 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      throw std::runtime_error("no answer from the server within " + std::to_string(bound.count()) +
                               " ms");
    }
    pollfd p{PQsocket(c_.get()), POLLIN, 0};
    if (p.fd < 0) return;  // connection gone: PQgetResult reports it
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (PQconsumeInput(c_.get()) == 0) return;  // read failed: PQgetResult reports it
  }
}

PgResult PgConn::collect(bool sent, std::chrono::milliseconds bound) {
  if (!sent) return PgResult(PQmakeEmptyPGresult(c_.get(), PGRES_FATAL_ERROR));
  PgResult last;
  for (;;) {
    PgResult r = next_result(bound);
    if (!r) break;
    const ExecStatusType st = r.status();
    // A FATAL ErrorResponse is followed by the connection's close, which libpq reports as a
    // second error without a SQLSTATE: keep the server's error, as psql shows it first.
    const bool keep_earlier_error = last && last.status() == PGRES_FATAL_ERROR &&
                                    !last.sqlstate().empty() && r.sqlstate().empty();
    if (!keep_earlier_error) last = std::move(r);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH ||
        PQstatus(c_.get()) == CONNECTION_BAD) {
      break;
    }
  }
  if (!last) return PgResult(PQmakeEmptyPGresult(c_.get(), PGRES_FATAL_ERROR));
  return last;
}

PgResult PgConn::exec(const std::string& sql, std::chrono::milliseconds bound) {
  return collect(PQsendQuery(c_.get(), sql.c_str()) == 1, bound);
}

PgResult PgConn::exec_params(const std::string& sql,
                             const std::vector<std::optional<std::string>>& params,
                             int result_format) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return collect(PQsendQueryParams(c_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                                   values.data(), nullptr, nullptr, result_format) == 1);
}

std::string PgConn::query_value(const std::string& sql) {
  const PgResult r = exec(sql);
  if (r.status() != PGRES_TUPLES_OK || r.rows() != 1 || r.cols() != 1) {
    throw std::runtime_error("query \"" + sql + "\" did not return one value: " + r.describe() +
                             " (rows=" + std::to_string(r.rows()) + ") " + error());
  }
  return r.value(0, 0);
}

void PgConn::run(const std::string& sql) {
  const PgResult r = exec(sql);
  if (!r.ok()) throw std::runtime_error("\"" + sql + "\" failed: " + r.describe() + " " + error());
}

PgResult PgConn::next_result(std::chrono::milliseconds bound) {
  wait_not_busy(bound);
  return PgResult(PQgetResult(c_.get()));
}

int PgConn::copy_out_row(std::string& out, std::chrono::milliseconds bound) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + bound;
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(c_.get(), &buf, 1);
    if (n > 0) {
      out.assign(buf, static_cast<std::size_t>(n));
      PQfreemem(buf);
      return n;
    }
    if (n < 0) return n;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error("no COPY data within the bound");
    pollfd p{PQsocket(c_.get()), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (PQconsumeInput(c_.get()) == 0) return -2;
  }
}

std::string PgCancel::cancel() const {
  if (!c_) return "no PGcancel";
  char err[256] = {};
  if (PQcancel(c_.get(), err, sizeof err) == 1) return "";
  return err;
}

std::string first_failure(PgConn& c) {
  if (!c.ok()) return c.error();
  const PgResult r = c.exec("SELECT 1");
  return r.ok() ? std::string() : r.sqlstate() + " " + r.error();
}

}  // namespace pgmux::it
