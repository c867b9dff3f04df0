// Message encoders: each appends exactly one complete message to the output buffer.
#include "protocol/message_writer.hpp"

namespace pgmux::protocol {

MessageWriter& MessageWriter::begin(char tag) {
  if (tag != kUntagged) out_.push_back(tag);
  length_at_ = out_.size();
  out_.append(4, '\0');
  return *this;
}

MessageWriter& MessageWriter::int8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}

MessageWriter& MessageWriter::int16(std::int16_t v) {
  const auto u = static_cast<std::uint16_t>(v);
  out_.push_back(static_cast<char>(u >> 8));
  out_.push_back(static_cast<char>(u & 0xff));
  return *this;
}

MessageWriter& MessageWriter::int32(std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<char>(u >> shift));
  return *this;
}

MessageWriter& MessageWriter::cstring(std::string_view s) {
  out_.append(s);
  out_.push_back('\0');
  return *this;
}

MessageWriter& MessageWriter::bytes(std::string_view s) {
  out_.append(s);
  return *this;
}

void MessageWriter::end() {
  const auto length = static_cast<std::uint32_t>(out_.size() - length_at_);
  for (int i = 0; i < 4; ++i) out_[length_at_ + i] = static_cast<char>(length >> (24 - 8 * i));
}

namespace {
void append_auth(std::string& out, AuthCode code, std::string_view data = {}) {
  MessageWriter(out)
      .begin(be::kAuthentication)
      .int32(static_cast<std::int32_t>(code))
      .bytes(data)
      .end();
}

void append_error_like(std::string& out, char tag, const ErrorSpec& e) {
  MessageWriter w(out);
  w.begin(tag);
  w.int8('S').cstring(e.severity).int8('V').cstring(e.severity);
  w.int8('C').cstring(e.sqlstate).int8('M').cstring(e.message);
  if (!e.detail.empty()) w.int8('D').cstring(e.detail);
  if (!e.hint.empty()) w.int8('H').cstring(e.hint);
  w.int8(0).end();
}

void append_empty(std::string& out, char tag) {
  MessageWriter(out).begin(tag).end();
}
}  // namespace

void append_auth_ok(std::string& out) {
  append_auth(out, AuthCode::ok);
}
void append_auth_cleartext(std::string& out) {
  append_auth(out, AuthCode::cleartext);
}
void append_auth_md5(std::string& out, const std::array<std::uint8_t, 4>& salt) {
  append_auth(out, AuthCode::md5,
              std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}
void append_auth_sasl(std::string& out, std::string_view mechanism, std::string_view second) {
  MessageWriter w(out);
  w.begin(be::kAuthentication).int32(static_cast<std::int32_t>(AuthCode::sasl)).cstring(mechanism);
  if (!second.empty()) w.cstring(second);
  w.int8(0).end();
}
void append_auth_sasl_continue(std::string& out, std::string_view data) {
  append_auth(out, AuthCode::sasl_continue, data);
}
void append_auth_sasl_final(std::string& out, std::string_view data) {
  append_auth(out, AuthCode::sasl_final, data);
}

void append_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  MessageWriter(out).begin(be::kParameterStatus).cstring(name).cstring(value).end();
}
void append_backend_key_data(std::string& out, std::int32_t pid, std::int32_t secret) {
  MessageWriter(out).begin(be::kBackendKeyData).int32(pid).int32(secret).end();
}
void append_ready_for_query(std::string& out, char status) {
  MessageWriter(out).begin(be::kReadyForQuery).int8(static_cast<std::uint8_t>(status)).end();
}
void append_command_complete(std::string& out, std::string_view tag) {
  MessageWriter(out).begin(be::kCommandComplete).cstring(tag).end();
}

void append_empty_query(std::string& out) {
  append_empty(out, be::kEmptyQuery);
}

void append_row_description(std::string& out, const std::vector<std::string_view>& columns) {
  constexpr std::int32_t kTextOid = 25;
  MessageWriter w(out);
  w.begin(be::kRowDescription).int16(static_cast<std::int16_t>(columns.size()));
  for (std::string_view c : columns) {
    w.cstring(c).int32(0).int16(0).int32(kTextOid).int16(-1).int32(-1).int16(0);
  }
  w.end();
}

void append_data_row(std::string& out, const std::vector<std::string_view>& values) {
  MessageWriter w(out);
  w.begin(be::kDataRow).int16(static_cast<std::int16_t>(values.size()));
  for (std::string_view v : values) w.int32(static_cast<std::int32_t>(v.size())).bytes(v);
  w.end();
}

void append_error(std::string& out, const ErrorSpec& e) {
  append_error_like(out, be::kErrorResponse, e);
}
void append_notice(std::string& out, const ErrorSpec& e) {
  append_error_like(out, be::kNoticeResponse, e);
}

void append_startup(std::string& out,
                    const std::vector<std::pair<std::string, std::string>>& params) {
  MessageWriter w(out);
  w.begin(kUntagged).int32(kProtocolVersion3);
  for (const auto& [k, v] : params) w.cstring(k).cstring(v);
  w.int8(0).end();
}
void append_cancel_request(std::string& out, std::int32_t pid, std::int32_t secret,
                           std::int32_t code) {
  MessageWriter(out).begin(kUntagged).int32(code).int32(pid).int32(secret).end();
}
void append_ssl_request(std::string& out) {
  MessageWriter(out).begin(kUntagged).int32(kSslRequestCode).end();
}
void append_password(std::string& out, std::string_view password) {
  MessageWriter(out).begin(fe::kPassword).cstring(password).end();
}
void append_sasl_initial_response(std::string& out, std::string_view mechanism,
                                  std::string_view data) {
  MessageWriter(out)
      .begin(fe::kPassword)
      .cstring(mechanism)
      .int32(static_cast<std::int32_t>(data.size()))
      .bytes(data)
      .end();
}
void append_sasl_response(std::string& out, std::string_view data) {
  MessageWriter(out).begin(fe::kPassword).bytes(data).end();
}
void append_query(std::string& out, std::string_view sql) {
  MessageWriter(out).begin(fe::kQuery).cstring(sql).end();
}
void append_parse(std::string& out, std::string_view name, std::string_view sql,
                  const std::vector<std::uint32_t>& param_types) {
  MessageWriter w(out);
  w.begin(fe::kParse)
      .cstring(name)
      .cstring(sql)
      .int16(static_cast<std::int16_t>(param_types.size()));
  for (std::uint32_t t : param_types) w.int32(static_cast<std::int32_t>(t));
  w.end();
}
void append_bind(std::string& out, std::string_view portal, std::string_view statement,
                 const std::vector<std::string_view>& text_params) {
  MessageWriter w(out);
  w.begin(fe::kBind).cstring(portal).cstring(statement).int16(0);
  w.int16(static_cast<std::int16_t>(text_params.size()));
  for (std::string_view p : text_params) w.int32(static_cast<std::int32_t>(p.size())).bytes(p);
  w.int16(0).end();
}
void append_describe(std::string& out, char kind, std::string_view name) {
  MessageWriter(out).begin(fe::kDescribe).int8(static_cast<std::uint8_t>(kind)).cstring(name).end();
}
void append_execute(std::string& out, std::string_view portal, std::int32_t max_rows) {
  MessageWriter(out).begin(fe::kExecute).cstring(portal).int32(max_rows).end();
}
void append_close(std::string& out, char kind, std::string_view name) {
  MessageWriter(out).begin(fe::kClose).int8(static_cast<std::uint8_t>(kind)).cstring(name).end();
}
void append_bind_head(std::string& out, std::string_view portal, std::string_view statement,
                      std::size_t params_size) {
  const std::size_t length = 4 + portal.size() + 1 + statement.size() + 1 + params_size;
  out.push_back(fe::kBind);
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((length >> shift) & 0xff));
  }
  out.append(portal).push_back('\0');
  out.append(statement).push_back('\0');
}
void append_sync(std::string& out) {
  append_empty(out, fe::kSync);
}
void append_flush(std::string& out) {
  append_empty(out, fe::kFlush);
}
void append_terminate(std::string& out) {
  append_empty(out, fe::kTerminate);
}
void append_copy_data(std::string& out, std::string_view data) {
  MessageWriter(out).begin(fe::kCopyData).bytes(data).end();
}
void append_copy_done(std::string& out) {
  append_empty(out, fe::kCopyDone);
}
void append_copy_fail(std::string& out, std::string_view reason) {
  MessageWriter(out).begin(fe::kCopyFail).cstring(reason).end();
}

}  // namespace pgmux::protocol
