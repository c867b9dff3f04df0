// Where a server listens, and (for a replica) its share of reads under load balancing.
#pragma once

#include <cstdint>
#include <string>

namespace pgmux::router {

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5432;
  int weight = 1;  // replicas: share of reads under load balancing
};

}  // namespace pgmux::router
