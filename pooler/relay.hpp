// The relay between a client and its leased server: two pumps that forward bytes frame-aware
// but copy-free, tracking just enough state (outstanding requests, COPY, open extended batch,
// transaction status) to know whether the server may be reused when the relay stops.
#pragma once

#include "pooler/asio_util.hpp"
#include "pooler/net/framed_socket.hpp"
#include "pooler/server_connection.hpp"
#include "pooler/traffic_stats.hpp"

namespace pgmux::pooler {

enum class RelayEnd : std::uint8_t {
  client_terminated,  // client sent Terminate
  client_gone,        // client closed or its socket failed
  server_gone,        // server closed or its socket failed
  client_violation,   // client sent an invalid frame
  server_violation,   // server sent an invalid frame
};

struct RelayState {
  int outstanding = 0;      // Query/Sync/FunctionCall sent and not yet answered by ReadyForQuery
  bool open_batch = false;  // extended-protocol messages sent since the last Sync
  bool in_copy_in = false;  // server asked for COPY data and has not finished
  bool server_write_cut = false;  // a write to the server was interrupted mid-way
  std::uint64_t queries = 0;
  std::uint64_t bytes_to_server = 0, bytes_to_client = 0;
  TrafficMeter meter;  // the pool's counters for SHOW STATS

  // Safe to reset and reuse: every request answered, nothing half-sent.
  [[nodiscard]] bool quiescent() const {
    return outstanding == 0 && !open_batch && !in_copy_in && !server_write_cut;
  }
};

// Relays until one side ends; the server's tx_status and parameters are kept current.
awaitable<RelayEnd> relay(FramedSocket& client, ServerConnection& server, RelayState& state);

}  // namespace pgmux::pooler
