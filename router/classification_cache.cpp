// LRU of classifications keyed by statement text.
#include "router/classification_cache.hpp"

#include "router/statement_key.hpp"

namespace pgmux::router {

const Classification& ClassificationCache::get(std::string_view sql,
                                               const FunctionCatalog& functions,
                                               std::uint64_t catalog_generation) {
  if (catalog_generation != generation_) {
    index_.clear();
    lru_.clear();
    generation_ = catalog_generation;
  }
  statement_key(sql, key_);
  if (auto it = index_.find(key_); it != index_.end()) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }
  ++misses_;
  if (capacity_ == 0) {
    scratch_ = classify(sql, functions);
    return scratch_;
  }
  if (index_.size() >= capacity_) {
    index_.erase(lru_.back().sql);
    lru_.pop_back();
  }
  lru_.push_front({key_, classify(sql, functions)});
  index_.emplace(lru_.front().sql, lru_.begin());
  return lru_.front().value;
}

void ClassificationCache::mark_write(std::string_view sql) {
  statement_key(sql, key_);
  if (auto it = index_.find(key_); it != index_.end()) {
    it->second->value.kind = StatementKind::write;
    it->second->value.hint = Hint::none;
  }
}

}  // namespace pgmux::router
