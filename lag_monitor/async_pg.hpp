// One libpq connection in non-blocking mode under Asio, used from coroutines on a single
// executor: PQconnectPoll / PQsendQuery / PQconsumeInput, waiting for socket readiness on a
// dup() of PQsocket (so Asio never closes libpq's descriptor). The lag monitor's connections.
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lag_monitor/lag_monitor.hpp"

namespace pgmux::lag {

namespace asio = boost::asio;
using asio::awaitable;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

using Row = std::vector<std::optional<std::string>>;

class MonitorError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One libpq connection used from coroutines on a single executor.
class AsyncPg {
 public:
  explicit AsyncPg(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  ~AsyncPg() { close(); }
  AsyncPg(const AsyncPg&) = delete;
  AsyncPg& operator=(const AsyncPg&) = delete;

  awaitable<void> connect(const MonitorTarget& t, const MonitorSettings& s) {
    close();
    const std::string port = std::to_string(t.port);
    // The pools' TCP keepalive and user timeout, so a cut link fails the monitor's
    // connection too (its query deadline ends the wait; these free the socket).
    const std::string keepalives = s.keepalive_idle_s > 0 ? "1" : "0";
    const std::string idle = std::to_string(s.keepalive_idle_s);
    const std::string interval = std::to_string(s.keepalive_interval_s);
    const std::string count = std::to_string(s.keepalive_count);
    const std::string user_timeout = std::to_string(s.tcp_user_timeout_ms);
    // libpq ignores empty values: an unset certificate file stays unset.
    const char* keys[] = {"host",
                          "port",
                          "dbname",
                          "user",
                          "password",
                          "sslmode",
                          "sslrootcert",
                          "sslcert",
                          "sslkey",
                          "gssencmode",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          nullptr};
    const char* values[] = {t.host.c_str(),
                            port.c_str(),
                            s.dbname.c_str(),
                            s.user.c_str(),
                            s.password.c_str(),
                            s.sslmode.c_str(),
                            s.sslrootcert.c_str(),
                            s.sslcert.c_str(),
                            s.sslkey.c_str(),
                            "disable",
                            "pgmux lag monitor",
                            keepalives.c_str(),
                            idle.c_str(),
                            interval.c_str(),
                            count.c_str(),
                            user_timeout.c_str(),
                            nullptr};
    conn_ = PQconnectStartParams(keys, values, 0);
    if (conn_ == nullptr) throw MonitorError("out of memory");
    if (PQstatus(conn_) == CONNECTION_BAD) throw MonitorError(error());
    PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
    for (;;) {
      if (poll == PGRES_POLLING_OK) break;
      if (poll == PGRES_POLLING_FAILED) throw MonitorError(error());
      co_await wait(poll == PGRES_POLLING_WRITING);
      poll = PQconnectPoll(conn_);
    }
    if (PQsetnonblocking(conn_, 1) != 0) throw MonitorError(error());
  }

  // Runs one simple query and returns the rows of its single result.
  awaitable<std::vector<Row>> query(const char* sql) {
    if (PQsendQuery(conn_, sql) == 0) throw MonitorError(error());
    for (int f = PQflush(conn_); f != 0; f = PQflush(conn_)) {
      if (f < 0) throw MonitorError(error());
      co_await wait(true);
    }
    std::vector<Row> rows;
    std::string failure;
    for (;;) {
      while (PQisBusy(conn_) != 0) {
        co_await wait(false);
        if (PQconsumeInput(conn_) == 0) throw MonitorError(error());
      }
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) break;
      if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); ++i) {
          Row row;
          for (int j = 0; j < PQnfields(r); ++j) {
            if (PQgetisnull(r, i, j) != 0) {
              row.emplace_back(std::nullopt);
            } else {
              row.emplace_back(PQgetvalue(r, i, j));
            }
          }
          rows.push_back(std::move(row));
        }
      } else {
        const char* m = PQresultErrorMessage(r);
        failure = m != nullptr ? m : "query failed";
      }
      PQclear(r);
    }
    if (!failure.empty()) throw MonitorError(failure);
    co_return rows;
  }

  void close() {
    sock_.reset();
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    raw_fd_ = -1;
  }
  // The server reported (ParameterStatus is_superuser) that the login is a superuser's.
  [[nodiscard]] bool superuser() const {
    const char* v = conn_ != nullptr ? PQparameterStatus(conn_, "is_superuser") : nullptr;
    return v != nullptr && std::string_view(v) == "on";
  }

 private:
  std::string error() const {
    std::string e = conn_ != nullptr ? PQerrorMessage(conn_) : "no connection";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    return e;
  }

  // Waits until libpq's socket is readable (or writable).
  awaitable<void> wait(bool write) {
    const int fd = PQsocket(conn_);
    if (fd < 0) throw MonitorError(error());
    if (fd != raw_fd_ || !sock_) {  // connecting may switch sockets (several addresses)
      sock_.reset();
      const int copy = ::dup(fd);
      if (copy < 0) throw MonitorError("dup() failed");
      sock_.emplace(ex_, copy);
      raw_fd_ = fd;
    }
    auto [ec] = co_await sock_->async_wait(write ? asio::posix::stream_descriptor::wait_write
                                                 : asio::posix::stream_descriptor::wait_read,
                                           kNoThrow);
    if (ec) throw MonitorError(ec.message());
  }

  asio::any_io_executor ex_;
  PGconn* conn_ = nullptr;
  int raw_fd_ = -1;
  std::optional<asio::posix::stream_descriptor> sock_;
};

}  // namespace pgmux::lag
