// Named prepared statements under transaction pooling. A client's statement names mean nothing
// to the server it happens to hold: pgmux names each statement on the servers after a digest
// of its text and parameter types ("pgmux_<hex>"), so every client preparing the same SQL
// shares one server-side statement, and prepares it again on any server that lacks it.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pooler/session/statement_effects.hpp"

namespace pgmux::pooler {

// One statement as pgmux prepares it on servers.
struct StatementDef {
  std::string server_name;   // "pgmux_" + 32 hex digits of SHA-256(query, parameter types)
  std::string parse_frame;   // a whole Parse message under server_name, ready to send
  StatementEffects effects;  // what executing it does to the session (SET, LISTEN, …)
};

// The digest-derived server name for a Parse body's query and parameter types (everything
// after the statement name).
[[nodiscard]] std::string server_statement_name(std::string_view parse_body_after_name);

// Hashing that lets string_view keys look up std::string ones without building a string:
// every Bind looks up two names, and the hot path must not allocate for it.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using NameMap = std::unordered_map<std::string, V, NameHash, std::equal_to<>>;

// A client's statements: its names → definitions.
class ClientStatements {
 public:
  // Records (or replaces) `client_name` from the body of the client's Parse message.
  std::shared_ptr<const StatementDef> define(std::string_view client_name,
                                             std::string_view parse_body,
                                             StatementEffects effects = {});
  [[nodiscard]] const StatementDef* find(std::string_view client_name) const;
  bool erase(std::string_view client_name);
  void clear() {
    by_name_.clear();
    bytes_ = 0;
    publish();
  }
  [[nodiscard]] std::size_t size() const { return by_name_.size(); }
  // Heap bytes the definitions hold (names, Parse frames, map nodes), counted as they change.
  [[nodiscard]] std::size_t bytes() const { return bytes_; }
  // Keeps `*count` equal to size() and `*bytes` to bytes() for other threads (SHOW CLIENTS,
  // SHOW MEM); null: nobody reads them.
  void publish_to(std::atomic<int>* count, std::atomic<std::int64_t>* bytes = nullptr) {
    published_ = count;
    published_bytes_ = bytes;
    publish();
  }

 private:
  void publish() {
    if (published_ != nullptr) {
      published_->store(static_cast<int>(by_name_.size()), std::memory_order_relaxed);
    }
    if (published_bytes_ != nullptr) {
      published_bytes_->store(static_cast<std::int64_t>(bytes_), std::memory_order_relaxed);
    }
  }
  NameMap<std::shared_ptr<const StatementDef>> by_name_;
  std::size_t bytes_ = 0;
  std::atomic<int>* published_ = nullptr;
  std::atomic<std::int64_t>* published_bytes_ = nullptr;
};

// The statements one server connection has prepared, least recently used first out.
class ServerStatements {
 public:
  explicit ServerStatements(std::size_t capacity = 256) : capacity_(capacity) {}

  [[nodiscard]] bool contains(std::string_view name) const;
  // Marks `name` as used now.
  void touch(std::string_view name);
  // Records a statement being prepared; returns the statement evicted to stay within
  // capacity, which the caller must Close on the server.
  std::optional<std::string> insert(std::string_view name);
  void erase(std::string_view name);
  void clear();
  void set_capacity(std::size_t c) { capacity_ = c == 0 ? 1 : c; }
  [[nodiscard]] std::size_t size() const { return index_.size(); }
  // size() as last published, readable from any thread (SHOW SERVERS, SHOW PREPARED).
  [[nodiscard]] int published_size() const { return published_.load(std::memory_order_relaxed); }
  // Heap bytes the names and their list and index nodes hold, readable from any thread.
  [[nodiscard]] std::int64_t published_bytes() const {
    return published_bytes_.load(std::memory_order_relaxed);
  }

 private:
  void publish() {
    published_.store(static_cast<int>(index_.size()), std::memory_order_relaxed);
    published_bytes_.store(static_cast<std::int64_t>(bytes_), std::memory_order_relaxed);
  }
  std::atomic<int> published_{0};
  std::atomic<std::int64_t> published_bytes_{0};
  std::size_t bytes_ = 0;
  std::size_t capacity_;
  std::list<std::string> lru_;  // front = most recently used
  NameMap<std::list<std::string>::iterator> index_;
};

}  // namespace pgmux::pooler
