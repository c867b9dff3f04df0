// The routing policy and the replica load balancer.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "router/policy.hpp"

using namespace pgmux::router;

namespace {

using K = StatementKind;

struct Case {
  const char* what;
  RoutingRules rules;
  RequestFacts facts;
  Target target;
  Reason reason;
};

constexpr RoutingRules kSplit{.read_write_split = true};
constexpr RoutingRules kNoRoTx{.read_write_split = true,
                               .read_only_transactions_to_replicas = false};

RequestFacts f(K kind, Hint hint = Hint::none, SessionTarget st = SessionTarget::automatic,
               bool ro = false, bool eligible = true) {
  return {.kind = kind,
          .hint = hint,
          .session_target = st,
          .session_read_only = ro,
          .replica_eligible = eligible};
}

}  // namespace

TEST_CASE("policy: decisions at a transaction boundary") {
  using ST = SessionTarget;
  const Case cases[] = {
      {"split off: all to primary", {}, f(K::read), Target::primary, Reason::split_off},
      {"read", kSplit, f(K::read), Target::replica, Reason::read},
      {"write", kSplit, f(K::write), Target::primary, Reason::write},
      {"BEGIN", kSplit, f(K::begin_read_write), Target::primary, Reason::transaction},
      {"BEGIN READ ONLY", kSplit, f(K::begin_read_only), Target::replica,
       Reason::read_only_transaction},
      {"BEGIN READ ONLY, not allowed", kNoRoTx, f(K::begin_read_only), Target::primary,
       Reason::transaction},
      {"BEGIN in a read-only session", kSplit,
       f(K::begin_read_write, Hint::none, ST::automatic, true), Target::replica,
       Reason::read_only_transaction},
      {"BEGIN in a read-only session, not allowed", kNoRoTx,
       f(K::begin_read_write, Hint::none, ST::automatic, true), Target::primary,
       Reason::transaction},
      {"SET alone", kSplit, f(K::session), Target::primary, Reason::session_statement},
      {"COMMIT alone", kSplit, f(K::transaction_end), Target::primary, Reason::session_statement},
      {"hint primary on a read", kSplit, f(K::read, Hint::primary), Target::primary,
       Reason::hint_primary},
      {"hint replica on a write", kSplit, f(K::write, Hint::replica), Target::replica,
       Reason::hint_replica},
      {"hint replica, none eligible", kSplit,
       f(K::read, Hint::replica, ST::automatic, false, false), Target::primary, Reason::no_replica},
      {"pgmux.target = primary", kSplit, f(K::read, Hint::none, ST::primary), Target::primary,
       Reason::target_primary},
      {"pgmux.target = replica", kSplit, f(K::write, Hint::none, ST::replica), Target::replica,
       Reason::target_replica},
      {"hint beats pgmux.target", kSplit, f(K::read, Hint::primary, ST::replica), Target::primary,
       Reason::hint_primary},
      {"read, no replica eligible", kSplit, f(K::read, Hint::none, ST::automatic, false, false),
       Target::primary, Reason::no_replica},
      {"write, no replica eligible", kSplit, f(K::write, Hint::none, ST::automatic, false, false),
       Target::primary, Reason::write},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const Decision d = decide(c.rules, c.facts);
    CHECK(d.target == c.target);
    CHECK_MESSAGE(d.reason == c.reason, to_string(d.reason));
  }
  RoutingRules always = kSplit;
  always.primary_reads = PrimaryReads::always;
  CHECK(decide(always, f(K::read)).primary_may_serve);
  CHECK_FALSE(decide(kSplit, f(K::read)).primary_may_serve);
}

TEST_CASE("load balancer: smooth weighted round robin gives each replica its share") {
  LoadBalancer lb(Balancing::round_robin, 3);
  const Candidate cands[] = {{0, 1, 0}, {1, 2, 0}, {2, 1, 0}};
  std::map<int, int> got;
  int last = -1, run = 0, longest_run = 0;
  for (int i = 0; i < 400; ++i) {
    const int idx = cands[lb.pick(cands)].index;
    ++got[idx];
    run = idx == last ? run + 1 : 1;
    longest_run = std::max(longest_run, run);
    last = idx;
  }
  CHECK(got[0] == 100);
  CHECK(got[1] == 200);
  CHECK(got[2] == 100);
  CHECK(longest_run <= 2);  // interleaved: weight 2 is never served 3 times in a row
  LoadBalancer equal(Balancing::round_robin, 2);
  const Candidate two[] = {{0, 1, 0}, {1, 1, 0}};
  CHECK(two[equal.pick(two)].index != two[equal.pick(two)].index);
}

TEST_CASE("load balancer: least connections, weighted, ties rotate") {
  LoadBalancer lb(Balancing::least_connections, 2);
  const Candidate busy[] = {{0, 1, 5}, {1, 1, 2}};
  CHECK(busy[lb.pick(busy)].index == 1);
  const Candidate weighted[] = {{0, 3, 5}, {1, 1, 2}};  // 5/3 < 2/1
  CHECK(weighted[lb.pick(weighted)].index == 0);
  const Candidate tie[] = {{0, 1, 0}, {1, 1, 0}};
  std::map<int, int> got;
  for (int i = 0; i < 10; ++i) ++got[tie[lb.pick(tie)].index];
  CHECK(got[0] == 5);
  CHECK(got[1] == 5);
  const Candidate with_primary[] = {{-1, 1, 0}, {0, 1, 3}};
  CHECK(with_primary[lb.pick(with_primary)].index == -1);
}
