// Cancel-key issue and lookup.
#include "pooler/pool/cancel_registry.hpp"

#include <array>
#include <utility>

#include <openssl/rand.h>

namespace pgmux::pooler {

namespace {
// Two random non-negative 31-bit values from one call (each call into OpenSSL's generator
// costs more than the bytes). Never a constant: without randomness a cancel key would be
// guessable, so a failing random source is an error (start-up checks it works).
std::pair<std::int32_t, std::int32_t> random_int32_pair() {
  std::array<std::uint32_t, 2> v{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(v.data()), sizeof v) != 1) {
    throw std::runtime_error("the random number generator failed (RAND_bytes)");
  }
  return {static_cast<std::int32_t>(v[0] & 0x7fffffff),
          static_cast<std::int32_t>(v[1] & 0x7fffffff)};
}
}  // namespace

CancelKey CancelRegistry::register_client(int worker) {
  // Both halves random but for the shard bits: a sequential process id would tell an
  // attacker which keys exist and leave only the secret to guess.
  for (;;) {
    const auto [random_pid, secret] = random_int32_pair();
    std::int32_t pid = (random_pid & ~(kShards - 1)) | (worker & (kShards - 1));
    if (peer_id_ != 0) pid = (pid & ~kPeerMask) | (peer_id_ << kPeerShift);
    if (pid == 0) continue;
    Shard& sh = shard(pid);
    std::lock_guard lock(sh.mutex);
    if (sh.entries.try_emplace(pid, Entry{.secret = secret}).second) return {pid, secret};
  }
}

void CancelRegistry::unregister_client(std::int32_t pid) {
  Shard& sh = shard(pid);
  std::lock_guard lock(sh.mutex);
  sh.entries.erase(pid);
}

void CancelRegistry::set_target(std::int32_t pid, const Endpoint& server, std::int32_t server_pid,
                                std::int32_t server_secret) {
  Shard& sh = shard(pid);
  std::lock_guard lock(sh.mutex);
  auto it = sh.entries.find(pid);
  if (it == sh.entries.end()) return;
  Entry& e = it->second;
  if (!e.target) e.target = std::make_unique<CancelTarget>();
  e.target->endpoint.host = server.host;  // reuses the string's capacity
  e.target->endpoint.port = server.port;
  e.target->server_pid = server_pid;
  e.target->server_secret = server_secret;
  e.active = true;
  ++e.lease;
}

void CancelRegistry::end_lease(std::int32_t pid, bool free_target) {
  Shard& sh = shard(pid);
  std::lock_guard lock(sh.mutex);
  auto it = sh.entries.find(pid);
  if (it == sh.entries.end()) return;
  it->second.active = false;
  ++it->second.lease;
  if (free_target) it->second.target.reset();
}

CancelRegistry::Lookup CancelRegistry::resolve(const CancelKey& key) const {
  const Shard& sh = shard(key.pid);
  std::lock_guard lock(sh.mutex);
  auto it = sh.entries.find(key.pid);
  if (it == sh.entries.end()) return {.miss = Miss::unknown_key};
  if (it->second.secret != key.secret) return {.miss = Miss::wrong_secret};
  if (!it->second.active) return {.miss = Miss::idle};
  return {.target = *it->second.target, .lease = it->second.lease};
}

bool CancelRegistry::still_leased(std::int32_t pid, std::uint64_t lease) const {
  const Shard& sh = shard(pid);
  std::lock_guard lock(sh.mutex);
  auto it = sh.entries.find(pid);
  return it != sh.entries.end() && it->second.active && it->second.lease == lease;
}

}  // namespace pgmux::pooler
