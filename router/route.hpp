// Routing vocabulary: where a statement or transaction goes, and why. The classifier and the
// policy that produce these values arrive with read/write routing; session pooling uses the
// primary for everything.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgmux::router {

enum class Target : std::uint8_t { primary, replica };

enum class Reason : std::uint8_t {
  session_pooling,  // session mode without read/write split: always the primary
};

// A routing decision is a value computed at a transaction boundary.
struct Decision {
  Target target = Target::primary;
  int replica = -1;  // index into the database's replicas when target == replica
  Reason reason = Reason::session_pooling;
};

[[nodiscard]] std::string_view to_string(Target t);
[[nodiscard]] std::string_view to_string(Reason r);

}  // namespace pgmux::router
