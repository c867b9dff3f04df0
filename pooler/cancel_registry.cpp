// Cancel-key issue and lookup.
#include "pooler/cancel_registry.hpp"

#include <openssl/rand.h>

namespace pgmux::pooler {

namespace {
std::int32_t random_int32() {
  std::uint32_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) v = 0x5eed1234;
  return static_cast<std::int32_t>(v & 0x7fffffff);
}
}  // namespace

CancelKey CancelRegistry::register_client() {
  const std::int32_t secret = random_int32();
  std::lock_guard lock(mutex_);
  if (next_pid_ == 0) next_pid_ = 1 + random_int32() % 1000000;  // not guessable from zero
  for (;;) {
    const std::int32_t pid = next_pid_;
    next_pid_ = next_pid_ == INT32_MAX ? 1 : next_pid_ + 1;
    if (entries_.try_emplace(pid, Entry{.secret = secret}).second) return {pid, secret};
  }
}

void CancelRegistry::unregister_client(std::int32_t pid) {
  std::lock_guard lock(mutex_);
  entries_.erase(pid);
}

void CancelRegistry::set_target(std::int32_t pid, const Endpoint& server, std::int32_t server_pid,
                                std::int32_t server_secret) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(pid);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (!e.target) e.target = std::make_unique<CancelTarget>();
  e.target->endpoint.host = server.host;  // reuses the string's capacity
  e.target->endpoint.port = server.port;
  e.target->server_pid = server_pid;
  e.target->server_secret = server_secret;
  e.active = true;
}

void CancelRegistry::clear_target(std::int32_t pid) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(pid);
  if (it != entries_.end()) it->second.active = false;
}

void CancelRegistry::drop_target(std::int32_t pid) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(pid);
  if (it == entries_.end()) return;
  it->second.active = false;
  it->second.target.reset();
}

std::optional<CancelTarget> CancelRegistry::resolve(const CancelKey& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key.pid);
  if (it == entries_.end() || it->second.secret != key.secret || !it->second.active) {
    return std::nullopt;
  }
  return *it->second.target;
}

}  // namespace pgmux::pooler
