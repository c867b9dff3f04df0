// Routing policy and replica load balancing.
#include "router/policy.hpp"

namespace pgmux::router {

namespace {

Decision to_replica(const RoutingRules& rules, const RequestFacts& f, Reason why) {
  if (!f.replica_eligible) return {.target = Target::primary, .reason = Reason::no_replica};
  return {.target = Target::replica,
          .reason = why,
          .primary_may_serve = rules.primary_reads == PrimaryReads::always};
}

}  // namespace

Decision decide(const RoutingRules& rules, const RequestFacts& f) {
  if (!rules.read_write_split) return {.target = Target::primary, .reason = Reason::split_off};
  if (f.hint == Hint::primary) return {.target = Target::primary, .reason = Reason::hint_primary};
  if (f.hint == Hint::replica) return to_replica(rules, f, Reason::hint_replica);
  if (f.session_target == SessionTarget::primary) {
    return {.target = Target::primary, .reason = Reason::target_primary};
  }
  if (f.session_target == SessionTarget::replica) {
    return to_replica(rules, f, Reason::target_replica);
  }
  switch (f.kind) {
    case StatementKind::read:
      return to_replica(rules, f, Reason::read);
    case StatementKind::begin_read_only:
      if (rules.read_only_transactions_to_replicas) {
        return to_replica(rules, f, Reason::read_only_transaction);
      }
      return {.target = Target::primary, .reason = Reason::transaction};
    case StatementKind::begin_read_write:
      if (f.session_read_only && rules.read_only_transactions_to_replicas) {
        return to_replica(rules, f, Reason::read_only_transaction);
      }
      return {.target = Target::primary, .reason = Reason::transaction};
    case StatementKind::session:
    case StatementKind::transaction_end:
    case StatementKind::set_target:
      return {.target = Target::primary, .reason = Reason::session_statement};
    case StatementKind::write:
      break;
  }
  return {.target = Target::primary, .reason = Reason::write};
}

std::size_t LoadBalancer::pick(std::span<const Candidate> candidates) {
  if (candidates.size() == 1) return 0;
  auto slot = [&](const Candidate& c) -> long& {
    return current_[static_cast<std::size_t>(c.index + 1)];
  };
  if (how_ == Balancing::least_connections) {
    // Lowest active/weight, compared exactly as active_a * weight_b < active_b * weight_a;
    // ties go round robin so idle replicas share the first requests.
    std::size_t best = rotation_++ % candidates.size();
    for (std::size_t k = 1; k < candidates.size(); ++k) {
      const std::size_t i = (best + k) % candidates.size();
      const Candidate& a = candidates[i];
      const Candidate& b = candidates[best];
      if (static_cast<long>(a.active) * b.weight < static_cast<long>(b.active) * a.weight) {
        best = i;
      }
    }
    return best;
  }
  long total = 0;
  std::size_t best = 0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    slot(candidates[i]) += candidates[i].weight;
    total += candidates[i].weight;
    if (slot(candidates[i]) > slot(candidates[best])) best = i;
  }
  slot(candidates[best]) -= total;
  return best;
}

}  // namespace pgmux::router
