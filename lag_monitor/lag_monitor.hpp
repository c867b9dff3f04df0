// The replica lag monitor of one database: its own libpq connections (one per server, never
// taken from the client pools), non-blocking and driven by Asio through PQsocket, sampling
// every lag_check_interval_ms. The primary's pg_current_wal_lsn() and each replica's recovery
// state, receive/replay LSN and last replay time go into a LagState the workers read; each
// replica's eligibility (EligibilityTracker) changes are logged once. Lost connections are
// re-established with back-off.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lag_monitor/lag_state.hpp"
#include "lag_monitor/replica_health.hpp"

namespace pgmux::lag {

struct MonitorTarget {
  std::string host;
  std::uint16_t port = 5432;
};

struct MonitorSettings {
  std::string database;  // pgmux's name, for logs
  std::string dbname, user, password;
  // libpq's sslmode and certificate files (empty: unset), as the database's server_tls_*.
  std::string sslmode = "disable", sslrootcert, sslcert, sslkey;
  std::chrono::milliseconds interval{200};
  // The monitor's own deadlines: a login, and one sampling query. A sample that takes longer
  // than lag_stale_after_ms would be stale when it came, so the runtime bounds the query by
  // it; a hanging server is then noticed, logged and reconnected to within that time.
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds query_timeout{1000};
  // TCP keepalive (idle 0: off) and TCP_USER_TIMEOUT (0: the kernel's) of its connections.
  int keepalive_idle_s = 15, keepalive_interval_s = 5, keepalive_count = 3;
  int tcp_user_timeout_ms = 0;
  // The longest pause between attempts to reach a server that failed.
  std::chrono::milliseconds max_backoff{2000};
  LagLimits limits;
};

class LagMonitor : public std::enable_shared_from_this<LagMonitor> {
 public:
  LagMonitor(boost::asio::any_io_executor ex, MonitorTarget primary,
             std::vector<MonitorTarget> replicas, MonitorSettings settings,
             std::shared_ptr<LagState> state);
  ~LagMonitor();
  LagMonitor(const LagMonitor&) = delete;
  LagMonitor& operator=(const LagMonitor&) = delete;

  // Starts one sampling coroutine per server on the executor.
  void start();
  // Ends them (thread-safe); their connections close.
  void stop();
  // Samples every replica now instead of at the next interval (thread-safe). Clients waiting
  // for a replica to replay their writes (causal_wait_ms) use it.
  void kick();
  // Samples the primary now (thread-safe): roles = "auto" and it refused a write.
  void recheck_primary();
  // RELOAD moved the database's primary: sample the new one from now on (thread-safe).
  void set_primary(MonitorTarget primary);
  // roles = "auto": called on the monitor's executor with the index of a replica that was
  // promoted and should take the writes (primary_election.hpp); the caller moves the primary
  // (set_primary follows). Set before start().
  void on_promotion(std::function<void(const MonitorTarget&, std::uint32_t timeline)> promoted);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgmux::lag
