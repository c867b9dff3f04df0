// Classifications by statement shape (text with literals stripped: statement_key.hpp),
// bounded, least recently used out first. One per worker
// thread (no locks); an application repeats a few hundred distinct statements, so the hot path
// parses each once. Cleared when the function catalog it was computed with changes.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "router/classifier.hpp"

namespace pgmux::router {

class ClassificationCache {
 public:
  explicit ClassificationCache(std::size_t capacity = 10000) : capacity_(capacity) {}

  // The cached classification of `sql`, computing it on a miss. `catalog_generation` changes
  // whenever `functions` does.
  const Classification& get(std::string_view sql, const FunctionCatalog& functions,
                            std::uint64_t catalog_generation);

  // A server refused `sql` as a write although it was classified otherwise (a function that
  // writes but is declared stable): remember it as a write.
  void mark_write(std::string_view sql);

  [[nodiscard]] std::size_t size() const { return index_.size(); }
  [[nodiscard]] std::uint64_t hits() const { return hits_; }
  [[nodiscard]] std::uint64_t misses() const { return misses_; }

 private:
  struct Entry {
    std::string sql;  // the statement's key: its text with literals stripped
    Classification value;
  };
  std::size_t capacity_;
  std::uint64_t generation_ = 0;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // keys view lru_
  std::uint64_t hits_ = 0, misses_ = 0;
  Classification scratch_;  // capacity 0: the last result
  std::string key_;         // reused for each lookup's key
};

}  // namespace pgmux::router
