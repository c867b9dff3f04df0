// What read/write routing knows about one database, shared by every worker: the function
// catalog (read from pg_proc on the primary once), which replicas are banned and until when,
// the load balancer's state and the count of decisions by reason. Each piece has its own
// synchronisation; nothing here blocks or does I/O.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "pooler/config.hpp"
#include "router/function_catalog.hpp"
#include "router/policy.hpp"

namespace pgmux::pooler {

class Pool;

class DatabaseRouting {
 public:
  explicit DatabaseRouting(const DatabaseConfig& db);

  // --- function catalog ---
  [[nodiscard]] std::shared_ptr<const router::FunctionCatalog> catalog() const;
  [[nodiscard]] std::uint64_t catalog_generation() const {
    return generation_.load(std::memory_order_acquire);
  }
  // True when the caller should read pg_proc now (once, until it succeeds).
  bool begin_catalog_load();
  void finish_catalog_load(router::NameSet side_effect_free);
  void abandon_catalog_load();

  // --- replicas ---
  [[nodiscard]] int replica_count() const { return static_cast<int>(replicas_.size()); }
  [[nodiscard]] bool eligible(int replica) const;
  [[nodiscard]] bool any_eligible() const;
  // Keeps reads away from a replica for replica_ban_ms; logged once per ban.
  void ban(int replica, const std::string& why);
  // Chooses among the eligible replicas (and the primary, index -1, when `primary_too`), by
  // the database's balancing rule; `active_per_replica` gives each replica pool's leased
  // connections. nullopt when no replica is eligible.
  std::optional<int> pick(bool primary_too, std::span<const int> active_per_replica,
                          int primary_active);

  // --- counters ---
  void count(router::Reason r) { decisions_[static_cast<int>(r)].fetch_add(1, relaxed); }
  [[nodiscard]] std::uint64_t decisions(router::Reason r) const {
    return decisions_[static_cast<int>(r)].load(relaxed);
  }

 private:
  static constexpr auto relaxed = std::memory_order_relaxed;
  using Clock = std::chrono::steady_clock;

  const std::string name_;
  const std::vector<Endpoint> replicas_;
  const std::chrono::milliseconds ban_time_;

  mutable std::mutex catalog_mutex_;
  std::shared_ptr<const router::FunctionCatalog> catalog_;
  const std::vector<std::string> write_functions_, read_functions_;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<bool> loading_{false};

  // Ban deadlines as steady-clock ticks (0: not banned), one per replica.
  std::unique_ptr<std::atomic<Clock::rep>[]> banned_until_;

  std::mutex balancer_mutex_;
  router::LoadBalancer balancer_;

  std::array<std::atomic<std::uint64_t>, router::kReasonCount> decisions_{};
};

}  // namespace pgmux::pooler
