// What the session engine works with while it inspects one stretch of bytes: the answers the
// server still owes, and the edits that rewrite the client's frames on their way. Part of the
// per-worker TurnState block a session borrows while active (turn_state.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "pooler/session/expectations.hpp"

namespace pgmux::pooler {

struct RewriteState {
  Expectations expect;     // answers still to come, in order
  std::string last_bound;  // server-side statement of the latest Bind (for 0A000)
  struct Edit {
    std::size_t pos, len;                 // the client frame replaced, in the unread bytes
    std::size_t scratch_at, scratch_len;  // what replaces it
  };
  std::vector<Edit> edits;
  std::string scratch;  // the bytes the edits insert
};

}  // namespace pgmux::pooler
