// Decoders for the protocol messages pgmux inspects; each checks the body strictly.
#include "protocol/messages.hpp"

#include <boost/system/errc.hpp>

#include "protocol/body_reader.hpp"

namespace pgmux::protocol {
namespace {

boost::system::error_code malformed() {
  return boost::system::errc::make_error_code(boost::system::errc::protocol_error);
}

template <class T>
Decoded<T> finish(const BodyReader& r, T value) {
  if (!r.ok() || !r.at_end()) return malformed();
  return value;
}

Decoded<TargetedName> decode_targeted_name(std::string_view body) {
  BodyReader r(body);
  TargetedName t;
  t.kind = r.byte();
  t.name = r.cstring();
  if (t.kind != 'S' && t.kind != 'P') return malformed();
  return finish(r, t);
}

}  // namespace

Decoded<StartupPacket> decode_startup(std::string_view body) {
  BodyReader r(body);
  StartupPacket p;
  p.version = r.int32();
  if (!r.ok()) return malformed();
  switch (p.version) {
    case kSslRequestCode:
      p.kind = StartupPacket::Kind::ssl_request;
      return finish(r, p);
    case kGssEncRequestCode:
      p.kind = StartupPacket::Kind::gssenc_request;
      return finish(r, p);
    case kCancelRequestCode:
    case kPeerCancelRequestCode:
      p.kind = p.version == kCancelRequestCode ? StartupPacket::Kind::cancel
                                               : StartupPacket::Kind::peer_cancel;
      p.cancel_pid = r.int32();
      p.cancel_secret = r.int32();
      return finish(r, p);
    default:
      break;
  }
  // Parameters: name\0value\0 pairs ended by a single \0.
  while (r.ok() && r.remaining() > 1) {
    std::string_view name = r.cstring();
    std::string_view value = r.cstring();
    if (name.empty()) return malformed();
    p.params.emplace_back(name, value);
  }
  if (r.byte() != '\0') return malformed();
  return finish(r, std::move(p));
}

Decoded<AuthRequest> decode_authentication(std::string_view body) {
  BodyReader r(body);
  AuthRequest a;
  a.code = static_cast<AuthCode>(r.int32());
  a.data = r.rest();
  if (!r.ok()) return malformed();
  if (a.code == AuthCode::md5 && a.data.size() != 4) return malformed();
  return a;
}

Decoded<ParameterStatus> decode_parameter_status(std::string_view body) {
  BodyReader r(body);
  ParameterStatus s;
  s.name = r.cstring();
  s.value = r.cstring();
  return finish(r, s);
}

Decoded<BackendKeyData> decode_backend_key_data(std::string_view body) {
  BodyReader r(body);
  BackendKeyData k;
  k.pid = r.int32();
  k.secret = r.int32();
  return finish(r, k);
}

Decoded<char> decode_ready_for_query(std::string_view body) {
  BodyReader r(body);
  const char status = r.byte();
  if (status != 'I' && status != 'T' && status != 'E') return malformed();
  return finish(r, status);
}

Decoded<ErrorFields> decode_error_fields(std::string_view body) {
  BodyReader r(body);
  ErrorFields f;
  for (char code = r.byte(); r.ok() && code != '\0'; code = r.byte()) {
    std::string_view value = r.cstring();
    switch (code) {
      case 'V':
        f.severity = value;
        break;
      case 'S':
        if (f.severity.empty()) f.severity = value;
        break;
      case 'C':
        f.sqlstate = value;
        break;
      case 'M':
        f.message = value;
        break;
      case 'D':
        f.detail = value;
        break;
      case 'H':
        f.hint = value;
        break;
      default:
        break;
    }
  }
  return finish(r, f);
}

Decoded<std::string_view> decode_query(std::string_view body) {
  BodyReader r(body);
  std::string_view sql = r.cstring();
  return finish(r, sql);
}

Decoded<std::string_view> decode_password(std::string_view body) {
  // PasswordMessage and SASLResponse: cleartext/md5 passwords end with NUL, SASL data does not.
  if (!body.empty() && body.back() == '\0') body.remove_suffix(1);
  return body;
}

Decoded<SaslInitialResponse> decode_sasl_initial_response(std::string_view body) {
  BodyReader r(body);
  SaslInitialResponse s;
  s.mechanism = r.cstring();
  const std::int32_t len = r.int32();
  if (len >= 0) s.data = r.bytes(static_cast<std::size_t>(len));
  return finish(r, s);
}

Decoded<Parse> decode_parse(std::string_view body) {
  BodyReader r(body);
  Parse p;
  p.name = r.cstring();
  p.query = r.cstring();
  const std::int16_t n = r.int16();
  if (n < 0) return malformed();
  p.param_types.reserve(static_cast<std::size_t>(n));
  for (std::int16_t i = 0; i < n && r.ok(); ++i) {
    p.param_types.push_back(static_cast<std::uint32_t>(r.int32()));
  }
  return finish(r, std::move(p));
}

Decoded<Bind> decode_bind(std::string_view body) {
  // Only the names matter to pgmux; the parameter section is forwarded untouched.
  BodyReader r(body);
  Bind b;
  b.portal = r.cstring();
  b.statement = r.cstring();
  if (!r.ok()) return malformed();
  return b;
}

Decoded<TargetedName> decode_close(std::string_view body) {
  return decode_targeted_name(body);
}
Decoded<TargetedName> decode_describe(std::string_view body) {
  return decode_targeted_name(body);
}

Decoded<Execute> decode_execute(std::string_view body) {
  BodyReader r(body);
  Execute e;
  e.portal = r.cstring();
  e.max_rows = r.int32();
  return finish(r, e);
}

Decoded<std::string_view> decode_copy_fail(std::string_view body) {
  return decode_query(body);
}

std::string_view find_param(const StartupPacket& packet, std::string_view name) {
  for (const auto& [k, v] : packet.params) {
    if (k == name) return v;
  }
  return {};
}

}  // namespace pgmux::protocol
