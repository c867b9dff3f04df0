// Names of routing targets and reasons, as shown in logs and the admin console.
#include "router/route.hpp"

namespace pgmux::router {

std::string_view to_string(Target t) {
  return t == Target::primary ? "primary" : "replica";
}

std::string_view to_string(Reason r) {
  switch (r) {
    case Reason::session_pooling:
      return "session_pooling";
    case Reason::split_off:
      return "split_off";
    case Reason::write:
      return "write";
    case Reason::transaction:
      return "transaction";
    case Reason::session_statement:
      return "session_statement";
    case Reason::read:
      return "read";
    case Reason::read_only_transaction:
      return "read_only_transaction";
    case Reason::hint_primary:
      return "hint_primary";
    case Reason::hint_replica:
      return "hint_replica";
    case Reason::target_primary:
      return "target_primary";
    case Reason::target_replica:
      return "target_replica";
    case Reason::no_replica:
      return "no_replica";
    case Reason::catalog_pending:
      return "catalog_pending";
    case Reason::retried_on_primary:
      return "retried_on_primary";
    case Reason::retried_after_replica_loss:
      return "retried_after_replica_loss";
    case Reason::replica_lagging:
      return "replica_lagging";
    case Reason::causal_primary:
      return "causal_primary";
    case Reason::causal_replica:
      return "causal_replica";
  }
  return "unknown";
}

}  // namespace pgmux::router
