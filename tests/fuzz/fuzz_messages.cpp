// Fuzz target: every message decoder in protocol/ over arbitrary bodies. Decoders either
// refuse the body or return views that lie inside it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/messages.hpp"

namespace pr = pgmux::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(bytes), size);
  auto inside = [body](std::string_view part) {
    if (part.empty()) return;
    if (part.data() < body.data() || part.data() + part.size() > body.data() + body.size()) {
      std::abort();
    }
  };
  if (auto s = pr::decode_startup(body)) {
    for (const auto& [k, v] : s->params) {
      inside(k);
      inside(v);
    }
    (void)pr::find_param(*s, "user");
  }
  (void)pr::decode_authentication(body);
  if (auto p = pr::decode_parameter_status(body)) {
    inside(p->name);
    inside(p->value);
  }
  (void)pr::decode_backend_key_data(body);
  (void)pr::decode_ready_for_query(body);
  if (auto e = pr::decode_error_fields(body)) {
    inside(e->sqlstate);
    inside(e->message);
  }
  if (auto q = pr::decode_query(body)) inside(*q);
  if (auto p = pr::decode_password(body)) inside(*p);
  if (auto s = pr::decode_sasl_initial_response(body)) {
    inside(s->mechanism);
    inside(s->data);
  }
  if (auto p = pr::decode_parse(body)) {
    inside(p->name);
    inside(p->query);
  }
  if (auto b = pr::decode_bind(body)) {
    inside(b->portal);
    inside(b->statement);
  }
  if (auto c = pr::decode_close(body)) inside(c->name);
  if (auto d = pr::decode_describe(body)) inside(d->name);
  (void)pr::decode_execute(body);
  if (auto f = pr::decode_copy_fail(body)) inside(*f);
  return 0;
}
