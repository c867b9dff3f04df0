// Frame-aware, copy-free forwarding in both directions for a leased server.
#include "pooler/relay.hpp"

#include "protocol/frame_scanner.hpp"
#include "protocol/messages.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

// Client → server: counts requests that expect a ReadyForQuery; stops at Terminate.
struct ClientInspector {
  RelayState& st;
  bool terminated = false;

  bool needs_body(char tag) const { return tag == pr::fe::kTerminate; }
  bool on_frame(char tag, std::string_view, std::size_t) {
    switch (tag) {
      case pr::fe::kTerminate:
        terminated = true;
        return false;
      case pr::fe::kQuery:
      case pr::fe::kFunctionCall:
        st.meter.request_sent(st.outstanding == 0);
        ++st.outstanding;
        ++st.queries;
        break;
      case pr::fe::kSync:
        st.meter.request_sent(st.outstanding == 0);
        ++st.outstanding;
        st.open_batch = false;
        break;
      case pr::fe::kParse:
      case pr::fe::kBind:
      case pr::fe::kDescribe:
      case pr::fe::kExecute:
      case pr::fe::kClose:
      case pr::fe::kFlush:
        if (tag == pr::fe::kExecute) ++st.queries;
        st.open_batch = true;
        break;
      default:
        break;  // CopyData/CopyDone/CopyFail and anything else pass through
    }
    return true;
  }
};

// Server → client: ReadyForQuery ends a request; ParameterStatus updates the server's view.
struct ServerInspector {
  RelayState& st;
  ServerConnection& server;
  bool bad = false;

  bool needs_body(char tag) const {
    return tag == pr::be::kReadyForQuery || tag == pr::be::kParameterStatus ||
           tag == pr::be::kErrorResponse;
  }
  bool on_frame(char tag, std::string_view body, std::size_t) {
    switch (tag) {
      case pr::be::kReadyForQuery: {
        auto status = pr::decode_ready_for_query(body);
        if (!status) {
          bad = true;
          return false;
        }
        server.set_tx_status(*status);
        --st.outstanding;
        st.in_copy_in = false;
        st.meter.ready_for_query(*status, st.outstanding == 0);
        break;
      }
      case pr::be::kParameterStatus:
        if (auto p = pr::decode_parameter_status(body)) server.record_parameter(p->name, p->value);
        break;
      case pr::be::kErrorResponse:
        if (auto e = pr::decode_error_fields(body)) st.meter.error(e->sqlstate);
        break;
      case pr::be::kCopyInResponse:
      case pr::be::kCopyBothResponse:
        st.in_copy_in = true;
        break;
      default:
        break;
    }
    return true;
  }
};

awaitable<RelayEnd> pump_client_to_server(FramedSocket& client, ServerConnection& server,
                                          RelayState& st) {
  pr::FrameScanner scanner(client.max_message_size());
  ClientInspector inspector{st};
  ByteBuffer& buf = client.buffer();
  for (;;) {
    if (buf.size() > 0) {
      const auto r = scanner.scan(buf.unread(), inspector);
      if (r.forwardable > 0) {
        st.server_write_cut = true;  // stays set if this write is interrupted
        auto [ec, n] = co_await asio::async_write(
            server.io().stream(), asio::buffer(buf.front(), r.forwardable), as_result);
        if (ec) co_return RelayEnd::server_gone;
        st.server_write_cut = false;
        st.bytes_to_server += r.forwardable;
        st.meter.received(r.forwardable);
        buf.consume(r.forwardable);
      }
      if (inspector.terminated) co_return RelayEnd::client_terminated;
      if (r.error != pr::FrameError::none) co_return RelayEnd::client_violation;
    }
    auto [ec, n] = co_await client.read_some();
    if (ec) co_return RelayEnd::client_gone;
  }
}

awaitable<RelayEnd> pump_server_to_client(FramedSocket& client, ServerConnection& server,
                                          RelayState& st) {
  pr::FrameScanner scanner(client.max_message_size());
  ServerInspector inspector{st, server};
  ByteBuffer& buf = server.io().buffer();
  for (;;) {
    if (buf.size() > 0) {
      const auto r = scanner.scan(buf.unread(), inspector);
      if (r.forwardable > 0) {
        auto [ec, n] = co_await asio::async_write(
            client.stream(), asio::buffer(buf.front(), r.forwardable), as_result);
        if (ec) co_return RelayEnd::client_gone;
        st.bytes_to_client += n;
        st.meter.sent(n);
        buf.consume(r.forwardable);
      }
      if (inspector.bad || r.error != pr::FrameError::none) co_return RelayEnd::server_violation;
    }
    auto [ec, n] = co_await server.io().read_some();
    if (ec) co_return RelayEnd::server_gone;
  }
}

}  // namespace

awaitable<RelayEnd> relay(FramedSocket& client, ServerConnection& server, RelayState& state) {
  client.release_frame();
  server.io().release_frame();
  auto winner = co_await (pump_client_to_server(client, server, state) ||
                          pump_server_to_client(client, server, state));
  co_return std::visit([](RelayEnd e) { return e; }, winner);
}

}  // namespace pgmux::pooler
