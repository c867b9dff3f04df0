// Maps the cancel keys pgmux hands to clients onto the server running each client's query.
// A CancelRequest can arrive on any worker, so the registry is shared and locked; it is touched
// once per login, per server lease change and per cancel, never per message. A key names the
// worker of its client (the low bits of its process id), and each worker's keys live in a
// shard of their own, so workers setting their clients' targets at every lease do not share a
// lock or a cache line; a cancel locks only the shard its key names. In a fleet the next eight
// bits name the instance (peer_id), so any instance can tell whose key a cancel carries.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "pooler/config/config.hpp"

namespace pgmux::pooler {

struct CancelKey {
  std::int32_t pid = 0;
  std::int32_t secret = 0;
};

// Where a cancel for a client must go right now.
struct CancelTarget {
  Endpoint endpoint;
  std::int32_t server_pid = 0;
  std::int32_t server_secret = 0;
};

class CancelRegistry {
 public:
  // Workers beyond this many share shards (the key still names worker % kShards).
  static constexpr std::int32_t kShards = 16;
  static constexpr int kPeerShift = 4;  // the bits above the shard's
  static constexpr std::int32_t kPeerMask = 0xff << kPeerShift;
  // Keys of an instance with a peer_id (1-255) name it; with 0 those bits stay random.
  explicit CancelRegistry(int peer_id = 0) : peer_id_(peer_id) {}
  // Issues a fresh key for a new client of `worker`.
  CancelKey register_client(int worker = 0);
  // The worker (modulo kShards) a key was issued for.
  [[nodiscard]] static int shard_of(std::int32_t pid) { return pid & (kShards - 1); }
  // The instance a key was issued by, as its peer_id (meaningful in a fleet only).
  [[nodiscard]] static int peer_of(std::int32_t pid) { return (pid & kPeerMask) >> kPeerShift; }
  [[nodiscard]] int peer_id() const { return peer_id_; }
  void unregister_client(std::int32_t pid);
  // The client now runs on this server: its cancels go there. The entry keeps one target block
  // from lease to lease, so a lease copies into it rather than allocating.
  void set_target(std::int32_t pid, const Endpoint& server, std::int32_t server_pid,
                  std::int32_t server_secret);
  // The client holds no server now (its cancels are dropped).
  void clear_target(std::int32_t pid) { end_lease(pid, false); }
  // Also frees the target block (a client going dormant keeps only its key).
  void drop_target(std::int32_t pid) { end_lease(pid, true); }
  // Why a cancel goes nowhere: no client has this key (it left, or the key was guessed), the
  // secret is wrong (a guess), or the client holds no server (nothing to cancel).
  enum class Miss : std::uint8_t { none, unknown_key, wrong_secret, idle };
  struct Lookup {
    std::optional<CancelTarget> target;
    Miss miss = Miss::none;
    std::uint64_t lease = 0;  // which of the client's leases `target` is
  };
  [[nodiscard]] Lookup resolve(const CancelKey& key) const;
  // Whether the client still holds the lease `lease` that resolve() named. Asked again just
  // before a cancel is delivered: a cancel whose connection to the server took longer than
  // the client's transaction must not reach the next client of that server.
  [[nodiscard]] bool still_leased(std::int32_t pid, std::uint64_t lease) const;

 private:
  void end_lease(std::int32_t pid, bool free_target);
  struct Entry {
    std::int32_t secret = 0;
    bool active = false;                   // `target` is the server the client holds
    std::uint64_t lease = 0;               // counts the client's leases and releases
    std::unique_ptr<CancelTarget> target;  // kept between leases
  };
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::int32_t, Entry> entries;
  };
  Shard& shard(std::int32_t pid) { return shards_[static_cast<std::size_t>(shard_of(pid))]; }
  const Shard& shard(std::int32_t pid) const {
    return shards_[static_cast<std::size_t>(shard_of(pid))];
  }
  std::array<Shard, kShards> shards_;
  int peer_id_ = 0;
};

}  // namespace pgmux::pooler
