// Encoders for the messages pgmux emits. They append to a caller-owned std::string so several
// messages can be batched into one write and the buffer's capacity is reused across batches.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace pgmux::protocol {

// Builds one message: begin(tag) … fields … end() patches the length word.
class MessageWriter {
 public:
  explicit MessageWriter(std::string& out) : out_(out) {}

  MessageWriter& begin(char tag);
  MessageWriter& int8(std::uint8_t v);
  MessageWriter& int16(std::int16_t v);
  MessageWriter& int32(std::int32_t v);
  MessageWriter& cstring(std::string_view s);
  MessageWriter& bytes(std::string_view s);
  void end();

 private:
  std::string& out_;
  std::size_t length_at_ = 0;
};

// Backend messages (pgmux acting as a server).
void append_auth_ok(std::string& out);
void append_auth_cleartext(std::string& out);
void append_auth_md5(std::string& out, const std::array<std::uint8_t, 4>& salt);
// AuthenticationSASL offering `mechanism` (and `second`, when not empty), in preference order.
void append_auth_sasl(std::string& out, std::string_view mechanism, std::string_view second = {});
void append_auth_sasl_continue(std::string& out, std::string_view data);
void append_auth_sasl_final(std::string& out, std::string_view data);
void append_parameter_status(std::string& out, std::string_view name, std::string_view value);
void append_backend_key_data(std::string& out, std::int32_t pid, std::int32_t secret);
void append_ready_for_query(std::string& out, char status);
void append_command_complete(std::string& out, std::string_view tag);
void append_empty_query(std::string& out);
void append_row_description(std::string& out, const std::vector<std::string_view>& columns);
void append_data_row(std::string& out, const std::vector<std::string_view>& values);

struct ErrorSpec {
  std::string_view severity = "ERROR";  // ERROR, FATAL, WARNING, NOTICE…
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail = {};
  std::string_view hint = {};
};
void append_error(std::string& out, const ErrorSpec& e);
void append_notice(std::string& out, const ErrorSpec& e);

// Frontend messages (pgmux acting as a client).
void append_startup(std::string& out,
                    const std::vector<std::pair<std::string, std::string>>& params);
// `code`: kCancelRequestCode, or kPeerCancelRequestCode between pgmux instances.
void append_cancel_request(std::string& out, std::int32_t pid, std::int32_t secret,
                           std::int32_t code = kCancelRequestCode);
void append_ssl_request(std::string& out);
void append_password(std::string& out, std::string_view password);
void append_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::string_view data);
void append_sasl_response(std::string& out, std::string_view data);
void append_query(std::string& out, std::string_view sql);
void append_parse(std::string& out, std::string_view name, std::string_view sql,
                  const std::vector<std::uint32_t>& param_types = {});
void append_bind(std::string& out, std::string_view portal, std::string_view statement,
                 const std::vector<std::string_view>& text_params = {});
void append_describe(std::string& out, char kind, std::string_view name);
void append_execute(std::string& out, std::string_view portal, std::int32_t max_rows = 0);
void append_close(std::string& out, char kind, std::string_view name);
// The tag, length and names of a Bind whose parameter section (`params_size` bytes: formats,
// values, result formats) is sent on from elsewhere, untouched: only names are rewritten, so a
// Bind of any size is never copied.
void append_bind_head(std::string& out, std::string_view portal, std::string_view statement,
                      std::size_t params_size);
void append_sync(std::string& out);
void append_flush(std::string& out);
void append_terminate(std::string& out);
void append_copy_data(std::string& out, std::string_view data);
void append_copy_done(std::string& out);
void append_copy_fail(std::string& out, std::string_view reason);

}  // namespace pgmux::protocol
