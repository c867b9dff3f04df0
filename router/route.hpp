// Routing vocabulary: where a statement or transaction goes, and why. Decisions are values
// computed at a transaction boundary by the policy (policy.hpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace pgmux::router {

enum class Target : std::uint8_t { primary, replica };

enum class Reason : std::uint8_t {
  session_pooling,        // session mode: the database entry's target for the whole session
  split_off,              // read_write_split = "off"
  write,                  // a write, or anything not positively a read
  transaction,            // BEGIN of a read-write transaction
  session_statement,      // SET/RESET/DISCARD/… alone
  read,                   // a read outside a transaction
  read_only_transaction,  // BEGIN READ ONLY, or default_transaction_read_only = on
  hint_primary,           // /* pgmux:primary */
  hint_replica,           // /* pgmux:replica */
  target_primary,         // SET pgmux.target = 'primary'
  target_replica,         // SET pgmux.target = 'replica'
  no_replica,             // a replica was wanted but none is eligible
  catalog_pending,        // the function catalog is not read yet: functions count as writes
  retried_on_primary,     // a replica refused it as a write (25006); it ran on the primary
  replica_lagging,        // a replica was wanted but every one is over its lag limits/unknown
  causal_primary,         // no eligible replica has replayed the client's writes yet
  causal_replica,         // a replica caught up with the client's writes within causal_wait_ms
  // a replica failed before answering a read (lost connection, 57P01-57P03): it ran again on
  // the primary
  retried_after_replica_loss,
};
inline constexpr int kReasonCount = 18;

// A routing decision is a value computed at a transaction boundary.
struct Decision {
  Target target = Target::primary;
  int replica = -1;  // index into the database's replicas when target == replica
  Reason reason = Reason::write;
  bool primary_may_serve = false;  // primary_reads = "always": the primary is a candidate too
};

[[nodiscard]] std::string_view to_string(Target t);
[[nodiscard]] std::string_view to_string(Reason r);

}  // namespace pgmux::router
