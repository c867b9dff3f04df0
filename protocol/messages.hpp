// Decoders for the PostgreSQL v3 messages pgmux inspects. Each takes a frame body (no tag, no
// length) and returns a struct of views into it, or protocol_error when the body is malformed.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/system/result.hpp>

namespace pgmux::protocol {

// Message tags, frontend (client → server).
namespace fe {
inline constexpr char kQuery = 'Q', kParse = 'P', kBind = 'B', kDescribe = 'D', kExecute = 'E',
                      kClose = 'C', kSync = 'S', kFlush = 'H', kTerminate = 'X', kCopyData = 'd',
                      kCopyDone = 'c', kCopyFail = 'f', kPassword = 'p', kFunctionCall = 'F';
}
// Message tags, backend (server → client).
namespace be {
inline constexpr char kAuthentication = 'R', kParameterStatus = 'S', kBackendKeyData = 'K',
                      kReadyForQuery = 'Z', kErrorResponse = 'E', kNoticeResponse = 'N',
                      kCommandComplete = 'C', kDataRow = 'D', kRowDescription = 'T',
                      kCopyInResponse = 'G', kCopyOutResponse = 'H', kCopyBothResponse = 'W',
                      kCopyData = 'd', kCopyDone = 'c', kParseComplete = '1', kBindComplete = '2',
                      kCloseComplete = '3', kNoData = 'n', kEmptyQuery = 'I', kNotification = 'A',
                      kParameterDescription = 't', kPortalSuspended = 's',
                      kNegotiateProtocolVersion = 'v';
}

inline constexpr std::int32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr std::int32_t kCancelRequestCode = 80877102;
inline constexpr std::int32_t kSslRequestCode = 80877103;
inline constexpr std::int32_t kGssEncRequestCode = 80877104;
// pgmux's own: a CancelRequest one pgmux instance passes to the peer that issued the key.
// The peer looks it up locally and never forwards it again, so a [peers] entry that reaches
// the wrong instance (a load balancer's address) cannot make cancels circle.
inline constexpr std::int32_t kPeerCancelRequestCode = 80877199;

// Authentication request codes carried by 'R'.
enum class AuthCode : std::int32_t {
  ok = 0,
  cleartext = 3,
  md5 = 5,
  sasl = 10,
  sasl_continue = 11,
  sasl_final = 12,
};

struct StartupPacket {
  enum class Kind : std::uint8_t { startup, ssl_request, gssenc_request, cancel, peer_cancel };
  Kind kind = Kind::startup;
  std::int32_t version = 0;
  std::vector<std::pair<std::string_view, std::string_view>> params;  // startup only
  std::int32_t cancel_pid = 0, cancel_secret = 0;                     // cancel only
};

struct AuthRequest {
  AuthCode code = AuthCode::ok;
  std::string_view data;  // md5: 4-byte salt; sasl: mechanism list; continue/final: SCRAM text
};

struct ParameterStatus {
  std::string_view name, value;
};

struct BackendKeyData {
  std::int32_t pid = 0, secret = 0;
};

// ErrorResponse / NoticeResponse fields pgmux looks at.
struct ErrorFields {
  std::string_view severity, sqlstate, message, detail, hint;
};

struct SaslInitialResponse {
  std::string_view mechanism;
  std::string_view data;  // empty when the client sent length -1
};

struct Parse {
  std::string_view name, query;
  std::vector<std::uint32_t> param_types;
};

struct Bind {
  std::string_view portal, statement;
};

// Close and Describe share a shape: 'S' statement or 'P' portal, then a name.
struct TargetedName {
  char kind = 'S';
  std::string_view name;
};

struct Execute {
  std::string_view portal;
  std::int32_t max_rows = 0;
};

template <class T>
using Decoded = boost::system::result<T>;

[[nodiscard]] Decoded<StartupPacket> decode_startup(std::string_view body);
[[nodiscard]] Decoded<AuthRequest> decode_authentication(std::string_view body);
[[nodiscard]] Decoded<ParameterStatus> decode_parameter_status(std::string_view body);
[[nodiscard]] Decoded<BackendKeyData> decode_backend_key_data(std::string_view body);
[[nodiscard]] Decoded<char> decode_ready_for_query(std::string_view body);
[[nodiscard]] Decoded<ErrorFields> decode_error_fields(std::string_view body);
[[nodiscard]] Decoded<std::string_view> decode_query(std::string_view body);
[[nodiscard]] Decoded<std::string_view> decode_password(std::string_view body);
[[nodiscard]] Decoded<SaslInitialResponse> decode_sasl_initial_response(std::string_view body);
[[nodiscard]] Decoded<Parse> decode_parse(std::string_view body);
[[nodiscard]] Decoded<Bind> decode_bind(std::string_view body);
[[nodiscard]] Decoded<TargetedName> decode_close(std::string_view body);
[[nodiscard]] Decoded<TargetedName> decode_describe(std::string_view body);
[[nodiscard]] Decoded<Execute> decode_execute(std::string_view body);
[[nodiscard]] Decoded<std::string_view> decode_copy_fail(std::string_view body);

// Looks up a startup parameter by name; empty when absent.
[[nodiscard]] std::string_view find_param(const StartupPacket& packet, std::string_view name);

}  // namespace pgmux::protocol
