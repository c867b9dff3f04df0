// The per-worker free list of TurnState blocks.
#include "pooler/session/turn_state.hpp"

#include <algorithm>

namespace pgmux::pooler {

namespace {
// A string or vector that grew past this for one large frame gives its memory back.
constexpr std::size_t kKeptCapacity = 4096;

template <class Container>
void empty_out(Container& c) {
  c.clear();
  if (c.capacity() * sizeof(typename Container::value_type) > kKeptCapacity) {
    Container().swap(c);
  }
}
}  // namespace

void TurnState::reset() {
  expect.clear();
  server_failure.reset();
  last_bound.clear();
  empty_out(edits);
  empty_out(scratch);
  empty_out(segments);
  empty_out(out);
  empty_out(retry_query);
  empty_out(held);
}

std::unique_ptr<TurnState> TurnStatePool::take(const Executor& ex) {
  lent_.fetch_add(1, std::memory_order_relaxed);
  if (free_.empty()) return std::make_unique<TurnState>(ex);
  std::unique_ptr<TurnState> state = std::move(free_.back());
  free_.pop_back();
  low_water_ = std::min(low_water_, free_.size());
  free_count_.store(free_.size(), std::memory_order_relaxed);
  return state;
}

void TurnStatePool::trim_unused() {
  const std::size_t unused = std::min(low_water_, free_.size());
  free_.resize(free_.size() - unused);
  low_water_ = free_.size();
  free_count_.store(free_.size(), std::memory_order_relaxed);
}

void TurnStatePool::give(std::unique_ptr<TurnState> state) {
  lent_.fetch_sub(1, std::memory_order_relaxed);
  if (shut_ || free_.size() >= kMaxFree) return;  // a burst does not stay resident
  state->reset();
  free_.push_back(std::move(state));
  free_count_.store(free_.size(), std::memory_order_relaxed);
}

}  // namespace pgmux::pooler
