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
  }
  return "unknown";
}

}  // namespace pgmux::router
