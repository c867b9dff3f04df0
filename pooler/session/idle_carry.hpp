// What an idle transaction-mode session keeps from one transaction to the next, beyond what
// its setup rebuilds, and the compact form a dormant client holds it in.
#pragma once

#include <memory>
#include <string>

#include "lag_monitor/lsn.hpp"
#include "pooler/session/prepared_statements.hpp"
#include "pooler/session/reported_parameters.hpp"
#include "pooler/session/startup_params.hpp"
#include "router/policy.hpp"

namespace pgmux::pooler {

// The client's session settings (from its startup packet, and as SET since), what it was
// told of them, its named statements, its read-your-writes position and its routing target.
struct IdleCarry {
  ParamList startup_settings;
  ReportedParameters told_client;
  std::unique_ptr<ClientStatements> statements;
  ParameterMap wanted;
  lag::Lsn min_lsn = 0;
  router::SessionTarget session_target = router::SessionTarget::automatic;
};

// The same, with the three name/value lists packed into one string ("name\0value\0" pairs,
// each list ended by one more "\0"): most clients have none of their own, so their dormant
// form holds three bytes inline instead of three empty containers.
struct PackedIdleCarry {
  std::shared_ptr<const ParameterMap> told_base;
  std::unique_ptr<ClientStatements> statements;
  lag::Lsn min_lsn = 0;
  std::string lists;
  router::SessionTarget session_target = router::SessionTarget::automatic;
};

[[nodiscard]] PackedIdleCarry pack(IdleCarry carry);
[[nodiscard]] IdleCarry unpack(PackedIdleCarry packed);

}  // namespace pgmux::pooler
