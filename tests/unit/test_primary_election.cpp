// Following a failover (lag_monitor/primary_election.hpp): a promoted replica on a newer
// timeline takes the writes; a server in recovery, stale or on an older timeline never does.
#include <doctest/doctest.h>

#include <vector>

#include "lag_monitor/primary_election.hpp"

using pgmux::lag::promoted_replica;
using pgmux::lag::ServerRole;

namespace {
constexpr ServerRole kPrimaryTl1{.fresh = true, .in_recovery = false, .timeline = 1};
constexpr ServerRole kReplica{.fresh = true, .in_recovery = true, .timeline = 0};
constexpr ServerRole kPromotedTl2{.fresh = true, .in_recovery = false, .timeline = 2};
}  // namespace

TEST_CASE("primary election: replicas in recovery leave the writes where they are") {
  const std::vector<ServerRole> replicas{kReplica, kReplica};
  CHECK_FALSE(promoted_replica(kPrimaryTl1, -1, replicas));
  // Even when the primary is gone: nobody else may write.
  CHECK_FALSE(promoted_replica(ServerRole{}, -1, replicas));
}

TEST_CASE("primary election: a promoted replica on a newer timeline takes the writes") {
  const std::vector<ServerRole> replicas{kReplica, kPromotedTl2};
  CHECK(promoted_replica(kPrimaryTl1, -1, replicas) == 1);   // the old primary still runs
  CHECK(promoted_replica(ServerRole{}, -1, replicas) == 1);  // the old primary is gone
}

TEST_CASE("primary election: the server writes go to now is not elected again") {
  const std::vector<ServerRole> replicas{kReplica, kPromotedTl2};
  CHECK_FALSE(promoted_replica(kPromotedTl2, 1, replicas));
}

TEST_CASE("primary election: stale, same-timeline and unknown-timeline servers do not win") {
  ServerRole stale = kPromotedTl2;
  stale.fresh = false;
  CHECK_FALSE(promoted_replica(kPrimaryTl1, -1, std::vector<ServerRole>{stale}));
  const ServerRole same{.fresh = true, .in_recovery = false, .timeline = 1};
  CHECK_FALSE(promoted_replica(kPrimaryTl1, -1, std::vector<ServerRole>{same}));
  const ServerRole unknown{.fresh = true, .in_recovery = false, .timeline = 0};
  CHECK_FALSE(promoted_replica(kPrimaryTl1, -1, std::vector<ServerRole>{unknown}));
  // A primary that went back into recovery is fenced: a same-timeline server out of recovery
  // is better than no writable server at all.
  const ServerRole demoted{.fresh = true, .in_recovery = true, .timeline = 0};
  CHECK(promoted_replica(demoted, -1, std::vector<ServerRole>{same}) == 0);
}

TEST_CASE("primary election: the newest timeline wins among promoted replicas") {
  const ServerRole tl3{.fresh = true, .in_recovery = false, .timeline = 3};
  const std::vector<ServerRole> replicas{kPromotedTl2, tl3, kReplica};
  CHECK(promoted_replica(kPrimaryTl1, -1, replicas) == 1);
  CHECK_FALSE(promoted_replica(tl3, 1, replicas));  // after that failover: stays
}
