// What a dormant client keeps of its transaction session: the packed form must give back
// exactly what was packed (settings, what the client was told, statements, LSN, target).
#include <doctest/doctest.h>

#include <memory>

#include "pooler/session/idle_carry.hpp"

using namespace pgmux::pooler;

TEST_CASE("an idle carry survives packing with every list, empty or not") {
  auto base = std::make_shared<const ParameterMap>(
      ParameterMap{{"TimeZone", "UTC"}, {"application_name", ""}, {"DateStyle", "ISO, MDY"}});
  IdleCarry carry;
  carry.startup_settings = {{"application_name", "web"}, {"search_path", "a, \"b c\""}};
  carry.told_client = ReportedParameters(base);
  carry.told_client.set("application_name", "web");
  carry.told_client.set("TimeZone", "UTC");  // same as the base: not the client's own
  carry.statements = std::make_unique<ClientStatements>();
  ClientStatements* const statements = carry.statements.get();
  carry.wanted = {{"application_name", "web"}, {"statement_timeout", "5s"}, {"empty", ""}};
  carry.min_lsn = 0x16B3748;
  carry.session_target = pgmux::router::SessionTarget::primary;

  const PackedIdleCarry packed = pack(std::move(carry));
  CHECK(packed.told_base == base);  // shared, not copied
  CHECK(packed.statements.get() == statements);

  IdleCarry back = unpack(PackedIdleCarry{.told_base = packed.told_base,
                                          .statements = nullptr,
                                          .min_lsn = packed.min_lsn,
                                          .lists = packed.lists,
                                          .session_target = packed.session_target});
  CHECK(back.startup_settings ==
        ParamList{{"application_name", "web"}, {"search_path", "a, \"b c\""}});
  CHECK(back.told_client.own_entries() == 1);
  REQUIRE(back.told_client.find("application_name") != nullptr);
  CHECK(*back.told_client.find("application_name") == "web");
  CHECK(*back.told_client.find("DateStyle") == "ISO, MDY");
  CHECK(back.wanted ==
        ParameterMap{{"application_name", "web"}, {"statement_timeout", "5s"}, {"empty", ""}});
  CHECK(back.min_lsn == 0x16B3748);
  CHECK(back.session_target == pgmux::router::SessionTarget::primary);
}

TEST_CASE("a client with nothing of its own packs into a few bytes") {
  IdleCarry carry;
  carry.told_client = ReportedParameters(std::make_shared<const ParameterMap>());
  const PackedIdleCarry packed = pack(std::move(carry));
  CHECK(packed.lists.size() == 3);  // three empty lists: held inline by the string
  IdleCarry back = unpack(PackedIdleCarry{.told_base = packed.told_base, .lists = packed.lists});
  CHECK(back.startup_settings.empty());
  CHECK(back.told_client.own_entries() == 0);
  CHECK(back.wanted.empty());
  CHECK(back.statements == nullptr);
}
