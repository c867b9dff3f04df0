// The routing policy: given what a request is and what the session and config allow, where it
// goes. Pure and total, decided once per transaction boundary; the load balancer then picks
// which replica.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "router/classifier.hpp"
#include "router/route.hpp"

namespace pgmux::router {

// Whether the primary also serves reads: never, only when no replica is eligible, or always
// (as one more candidate for the load balancer).
enum class PrimaryReads : std::uint8_t { never, fallback, always };
// SET pgmux.target: a session-level override of the classifier.
enum class SessionTarget : std::uint8_t { automatic, primary, replica };

struct RoutingRules {
  bool read_write_split = false;
  PrimaryReads primary_reads = PrimaryReads::fallback;
  bool read_only_transactions_to_replicas = true;
};

struct RequestFacts {
  StatementKind kind = StatementKind::write;
  Hint hint = Hint::none;
  SessionTarget session_target = SessionTarget::automatic;
  bool session_read_only = false;  // default_transaction_read_only = on for this client
  bool replica_eligible = false;   // at least one replica may take reads now
};

[[nodiscard]] Decision decide(const RoutingRules& rules, const RequestFacts& facts);

// Picks a replica among the eligible ones.
enum class Balancing : std::uint8_t { round_robin, least_connections };

struct Candidate {
  int index = -1;  // replica index; -1 for the primary (primary_reads = "always")
  int weight = 1;  // > 0
  int active = 0;  // leased connections now (least_connections)
};

// Smooth weighted round robin (each candidate gets its share, interleaved) or weighted least
// connections with round-robin tie-breaking. Not thread-safe: the owner serialises calls.
class LoadBalancer {
 public:
  LoadBalancer(Balancing how, int replicas) : how_(how), current_(replicas + 1, 0) {}
  // Position in `candidates` of the one to use; candidates must not be empty.
  std::size_t pick(std::span<const Candidate> candidates);

 private:
  Balancing how_;
  std::vector<long> current_;  // smooth-WRR state per replica (+1: the primary)
  std::size_t rotation_ = 0;
};

}  // namespace pgmux::router
