#include "pooler/session/prepared_statements.hpp"

#include <openssl/evp.h>

#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace {
// What one entry costs on the heap: its strings' buffers beyond the small-string size, and the
// hash or list node holding it (a node, a pointer and the key's std::string).
std::size_t heap_string(std::string_view s) {
  return s.size() > 15 ? s.size() + 1 : 0;
}
std::size_t client_statement_bytes(std::string_view client_name, const StatementDef& def) {
  return sizeof(StatementDef) + 64 + heap_string(client_name) + heap_string(def.server_name) +
         heap_string(def.parse_frame);
}
std::size_t server_statement_bytes(std::string_view name) {
  return 2 * (sizeof(std::string) + 32 + heap_string(name));  // LRU list node + index node
}
}  // namespace

std::string server_statement_name(std::string_view parse_body_after_name) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(parse_body_after_name.data(), parse_body_after_name.size(), digest, &len, EVP_sha256(),
             nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "pgmux_";
  for (unsigned int i = 0; i < 16 && i < len; ++i) {
    name.push_back(kHex[digest[i] >> 4]);
    name.push_back(kHex[digest[i] & 0xf]);
  }
  return name;
}

std::shared_ptr<const StatementDef> ClientStatements::define(std::string_view client_name,
                                                             std::string_view parse_body,
                                                             StatementEffects effects) {
  // The body starts with the client's name and its terminator; the rest (query, types) is
  // what identifies the statement.
  const std::string_view rest = parse_body.substr(client_name.size() + 1);
  auto def = std::make_shared<StatementDef>();
  def->server_name = server_statement_name(rest);
  def->effects = std::move(effects);
  protocol::MessageWriter w(def->parse_frame);
  w.begin('P').cstring(def->server_name).bytes(rest).end();
  auto& slot = by_name_[std::string(client_name)];
  if (slot) bytes_ -= client_statement_bytes(client_name, *slot);
  slot = def;
  bytes_ += client_statement_bytes(client_name, *def);
  publish();
  return def;
}

const StatementDef* ClientStatements::find(std::string_view client_name) const {
  auto it = by_name_.find(client_name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

bool ClientStatements::erase(std::string_view client_name) {
  auto it = by_name_.find(client_name);
  if (it == by_name_.end()) return false;
  bytes_ -= client_statement_bytes(it->first, *it->second);
  by_name_.erase(it);
  publish();
  return true;
}

bool ServerStatements::contains(std::string_view name) const {
  return index_.find(name) != index_.end();
}

void ServerStatements::touch(std::string_view name) {
  auto it = index_.find(name);
  if (it != index_.end()) lru_.splice(lru_.begin(), lru_, it->second);
}

std::optional<std::string> ServerStatements::insert(std::string_view name) {
  const std::string key(name);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return std::nullopt;
  }
  lru_.push_front(key);
  index_.emplace(key, lru_.begin());
  bytes_ += server_statement_bytes(key);
  if (index_.size() <= capacity_) {
    publish();
    return std::nullopt;
  }
  std::string evicted = std::move(lru_.back());
  lru_.pop_back();
  index_.erase(evicted);
  bytes_ -= server_statement_bytes(evicted);
  publish();
  return evicted;
}

void ServerStatements::erase(std::string_view name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  bytes_ -= server_statement_bytes(it->first);
  lru_.erase(it->second);
  index_.erase(it);
  publish();
}

void ServerStatements::clear() {
  lru_.clear();
  index_.clear();
  bytes_ = 0;
  publish();
}

}  // namespace pgmux::pooler
