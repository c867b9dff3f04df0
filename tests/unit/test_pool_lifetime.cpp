// server_lifetime_ms jitter: connections opened together retire at spread-out times, never
// later than configured.
#include <doctest/doctest.h>

#include "pooler/pool/server_lifetime.hpp"

using namespace pgmux::pooler;
using Millis = std::chrono::milliseconds;

TEST_CASE("jittered_lifetime stays within the last fifth below the configured lifetime") {
  const Millis lifetime(3600000);
  CHECK(jittered_lifetime(lifetime, 0.0) == lifetime);
  CHECK(jittered_lifetime(lifetime, 0.5) == Millis(3240000));
  CHECK(jittered_lifetime(lifetime, 0.999999) > Millis(2880000));
  CHECK(jittered_lifetime(lifetime, 0.999999) < lifetime);
  CHECK(jittered_lifetime(Millis(1), 0.7) == Millis(1));  // rounding never reaches zero here
  for (double u = 0.0; u < 1.0; u += 0.01) {
    CAPTURE(u);
    const Millis m = jittered_lifetime(Millis(1000), u);
    CHECK(m <= Millis(1000));
    CHECK(m > Millis(800));
  }
}
