// What read/write routing knows about one database, shared by every worker: the function
// catalog (read from pg_proc on the primary once), which replicas are banned and until when,
// the load balancer's state and the count of decisions by reason. Each piece has its own
// synchronisation; nothing here blocks or does I/O. Replica selection lives here, beside the
// policy that decides whether a statement may go to a replica at all.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "lag_monitor/lag_state.hpp"
#include "router/endpoint.hpp"
#include "router/function_catalog.hpp"
#include "router/policy.hpp"

namespace pgmux::router {

// What a DatabaseRouting is built from (the database's [routing] settings, resolved).
struct ReplicaSelectionSettings {
  std::chrono::milliseconds ban_time{15000};
  Balancing balancing = Balancing::round_robin;
  std::vector<std::string> write_functions, read_functions;
};

class DatabaseRouting {
 public:
  DatabaseRouting(std::string name, std::vector<Endpoint> replicas,
                  const ReplicaSelectionSettings& settings);
  [[nodiscard]] const std::string& name() const { return name_; }

  // --- function catalog ---
  [[nodiscard]] std::shared_ptr<const FunctionCatalog> catalog() const;
  [[nodiscard]] std::uint64_t catalog_generation() const {
    return generation_.load(std::memory_order_acquire);
  }
  // True when the caller should read pg_proc now (once, until it succeeds).
  bool begin_catalog_load();
  void finish_catalog_load(NameSet side_effect_free);
  void abandon_catalog_load();
  // RELOAD: new write_functions/read_functions, and pg_proc read again by the next
  // transaction on the primary (until then, function calls count as writes).
  void reset_catalog(std::vector<std::string> write_functions,
                     std::vector<std::string> read_functions);

  // --- replicas ---
  [[nodiscard]] int replica_count() const { return static_cast<int>(replicas_.size()); }
  // Not banned, and (when the lag monitor runs) within the lag limits and, when `min_lsn` is
  // given, past that WAL position (the client's last write).
  [[nodiscard]] bool eligible(int replica, lag::Lsn min_lsn = 0) const;
  [[nodiscard]] bool any_eligible(lag::Lsn min_lsn = 0) const;
  // Worth waiting for, for a read already sent to it: not banned and, when the lag monitor
  // runs, its last sample fresh (a replica that is only lagging still answers). Without a
  // monitor nothing says otherwise, so only a ban gives up on it.
  [[nodiscard]] bool answering(int replica) const;
  // The lag monitor publishes here; until monitored() the lag does not count.
  [[nodiscard]] const std::shared_ptr<lag::LagState>& lag() const { return lag_; }
  void set_monitored(std::function<void()> kick) {
    kick_ = std::move(kick);
    monitored_.store(true);
  }
  [[nodiscard]] bool monitored() const { return monitored_.load(); }
  // Asks the monitor for fresh replica samples now (causal waits).
  void kick() const {
    if (kick_) kick_();
  }
  // roles = "auto": the monitor follows promotions; `recheck` has it sample the primary now.
  // Set once, with set_monitored.
  void set_follows_promotion(std::function<void()> recheck) {
    recheck_primary_ = std::move(recheck);
    follows_promotion_.store(true);
  }
  // roles = "auto" and the server writes go to said at its last sample that it is in recovery
  // (demoted, or back as a standby): no write may reach it until the monitor finds the
  // promoted server (or it leaves recovery).
  [[nodiscard]] bool primary_fenced() const {
    return follows_promotion_.load(relaxed) && lag_->primary_in_recovery.load(relaxed);
  }
  // The primary refused a write with 25006: it may have been demoted. Under roles = "auto"
  // the monitor looks now rather than at its next interval.
  void recheck_primary() const {
    if (follows_promotion_.load(relaxed) && recheck_primary_) recheck_primary_();
  }

  // --- read-your-writes, per database user ---
  void note_user_write(const std::string& user, lag::Lsn lsn);
  [[nodiscard]] lag::Lsn user_write(const std::string& user) const;
  // Keeps reads away from a replica for replica_ban_ms; logged once per ban.
  void ban(int replica, const std::string& why);
  // BAN/UNBAN from the console: out of rotation until UNBAN (which also lifts a timed ban).
  void set_manual_ban(int replica, bool on);
  [[nodiscard]] bool manually_banned(int replica) const {
    return manual_ban_[static_cast<std::size_t>(replica)].load(relaxed);
  }
  // Chooses among the eligible replicas (and the primary, index -1, when `primary_too`), by
  // the database's balancing rule; `active_per_replica` gives each replica pool's leased
  // connections. nullopt when no replica is eligible.
  std::optional<int> pick(bool primary_too, std::span<const int> active_per_replica,
                          int primary_active, lag::Lsn min_lsn = 0);

  [[nodiscard]] const Endpoint& replica_endpoint(int i) const {
    return replicas_[static_cast<std::size_t>(i)];
  }
  // Milliseconds of ban left (0: not banned).
  [[nodiscard]] std::int64_t ban_left_ms(int replica) const;

  // --- counters ---
  void count(Reason r) { decisions_[static_cast<int>(r)].fetch_add(1, relaxed); }
  void count_read(int replica) { reads_[static_cast<std::size_t>(replica)].fetch_add(1, relaxed); }
  [[nodiscard]] std::uint64_t reads(int replica) const {
    return reads_[static_cast<std::size_t>(replica)].load(relaxed);
  }
  [[nodiscard]] std::uint64_t decisions(Reason r) const {
    return decisions_[static_cast<int>(r)].load(relaxed);
  }

 private:
  static constexpr auto relaxed = std::memory_order_relaxed;
  using Clock = std::chrono::steady_clock;

  const std::string name_;
  const std::vector<Endpoint> replicas_;
  const std::chrono::milliseconds ban_time_;

  mutable std::mutex catalog_mutex_;
  std::shared_ptr<const FunctionCatalog> catalog_;
  std::vector<std::string> write_functions_, read_functions_;  // under catalog_mutex_
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<bool> loading_{false};

  // Ban deadlines as steady-clock ticks (0: not banned), one per replica.
  std::unique_ptr<std::atomic<Clock::rep>[]> banned_until_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> reads_;  // leases served, per replica
  std::unique_ptr<std::atomic<bool>[]> manual_ban_;

  std::mutex balancer_mutex_;
  LoadBalancer balancer_;

  std::array<std::atomic<std::uint64_t>, kReasonCount> decisions_{};

  std::shared_ptr<lag::LagState> lag_;
  std::atomic<bool> monitored_{false};
  std::function<void()> kick_;  // set once, before clients arrive
  std::atomic<bool> follows_promotion_{false};
  std::function<void()> recheck_primary_;  // likewise

  mutable std::mutex user_writes_mutex_;
  std::map<std::string, lag::Lsn, std::less<>> user_writes_;
};

}  // namespace pgmux::router
