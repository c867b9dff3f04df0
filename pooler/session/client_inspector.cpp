// The client side of the session engine: see client_inspector.hpp.
#include "pooler/session/client_inspector.hpp"

#include <spdlog/spdlog.h>

#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {
// A Close of a portal that never exists: answered with CloseComplete and no side effect. It
// stands in for a client's Close of a statement pgmux keeps prepared for other clients.
constexpr std::string_view kNoopPortal = "pgmux.noop";
}  // namespace

void ClientInspector::end_edit(std::string_view body, std::size_t replaced) {
  if (replaced == std::string_view::npos) replaced = body.size();
  live.edits.push_back({frame_pos(body), replaced + pr::kTaggedHeaderSize, edit_start,
                        live.scratch.size() - edit_start});
}

void ClientInspector::ensure_prepared(const StatementDef& def, bool client_parse) {
  ServerStatements& on_server = server.statements();
  if (!client_parse && on_server.contains(def.server_name)) {
    on_server.touch(def.server_name);
    state.meter.prepared_hit();
    return;
  }
  state.meter.server_parse();
  // Close first: harmless if absent, and it keeps pgmux right even if its bookkeeping
  // missed a statement the server still has.
  pr::append_close(live.scratch, 'S', def.server_name);
  live.expect.push({Expect::close, true, false, {}});
  live.scratch += def.parse_frame;
  live.expect.push({Expect::parse, !client_parse, false, def.server_name});
  if (auto evicted = on_server.insert(def.server_name)) {
    pr::append_close(live.scratch, 'S', *evicted);
    live.expect.push({Expect::close, true, false, {}});
  }
}

bool ClientInspector::on_frame(char tag, std::string_view body, std::size_t length) {
  // On a replica, each request is routed on its own: a write must not follow a read there.
  const bool request_start =
      tag == pr::fe::kQuery || tag == pr::fe::kFunctionCall ||
      ((tag == pr::fe::kParse || tag == pr::fe::kBind) && !live.expect.open_batch());
  if (request_start && state.lease_target >= 0 && !first) return false;
  if (tag == pr::fe::kTerminate) {
    terminated = true;
    return false;
  }
  if (first) first_tag = tag;
  first = false;
  last_tag = tag;
  if (tag == pr::fe::kSync) ++syncs;
  if (tag == pr::fe::kQuery) ++queries;
  if (tag == pr::fe::kFunctionCall || tag == pr::fe::kCopyData || tag == pr::fe::kCopyDone ||
      tag == pr::fe::kCopyFail) {
    ++others;
  }
  // Parse/Close answers queued ahead (the client's or pgmux's own) are part of this request.
  const bool nothing_pending = !live.expect.request_pending();
  // After an error in its batch the server discards this frame: forwarded as it is, with
  // no effect recorded, as PostgreSQL records none.
  if (!live.expect.client_frame(tag)) return true;
  if (tag == pr::fe::kSync || tag == pr::fe::kQuery || tag == pr::fe::kFunctionCall) {
    ++state.requests_on_lease;
    state.meter.request_sent(nothing_pending);
  }
  if ((tag == pr::fe::kQuery || tag == pr::fe::kParse) && body.size() < length) {
    // Only the head of one too large to hold (session pooling): whatever it set is read
    // back after the transaction.
    state.settings_changed = true;
    return true;
  }
  switch (tag) {
    case pr::fe::kQuery:
      on_query(body);
      break;
    case pr::fe::kSync:
      break;
    case pr::fe::kParse:
      on_parse(body);
      break;
    case pr::fe::kBind:
      on_bind(body, length);
      break;
    case pr::fe::kDescribe:
      on_describe(body);
      break;
    case pr::fe::kClose:
      on_close(body);
      break;
    case pr::fe::kExecute:
    case pr::fe::kFlush:
      break;
    default:
      break;  // CopyData/CopyDone/CopyFail pass through
  }
  return !violation;
}

void ClientInspector::on_query(std::string_view body) {
  auto sql = pr::decode_query(body);
  if (!sql) {
    violation = true;
    return;
  }
  spdlog::trace("{} query: {}", label, *sql);
  const StatementEffects fx = scan_statement_effects(*sql);
  if (apply_effects(fx)) {
    // Let the server raise the error, so a transaction in progress is aborted exactly as
    // PostgreSQL would abort it.
    begin_edit();
    pr::append_query(live.scratch, refusal_sql(fx.pin));
    end_edit(body);
    return;
  }
  if (!fx.deallocate_name.empty()) deallocate_by_query(body, fx.deallocate_name);
}

void ClientInspector::deallocate_by_query(std::string_view body, std::string_view client_name) {
  const StatementDef* def = state.find_statement(client_name);
  if (def == nullptr) return;
  // Deallocates the server-side name, preparing it first (in its own Sync, answers dropped)
  // if this server lacks it.
  const std::string server_name = def->server_name;
  begin_edit();
  ServerStatements& on_server = server.statements();
  if (!on_server.contains(server_name)) {
    live.expect.pop_back();  // the Query entry goes after the inserted Sync
    pr::append_close(live.scratch, 'S', server_name);
    live.expect.push({Expect::close, true, true, {}});
    live.scratch += def->parse_frame;
    live.expect.push({Expect::parse, true, true, server_name});
    pr::append_sync(live.scratch);
    live.expect.push({Expect::sync, true, true, {}});
    live.expect.push({Expect::query});
  }
  on_server.erase(server_name);
  pr::append_query(live.scratch, "DEALLOCATE " + server_name);
  end_edit(body);
  state.erase_statement(client_name);
}

bool ClientInspector::apply_effects(const StatementEffects& fx) {
  // A session-pooled client keeps its server, so what it SETs stays there: only a reset
  // needs reading back (to restore a startup value).
  if (fx.changes_settings && (!state.settings.session_pooling || fx.may_reset_settings)) {
    state.settings_changed = true;
  }
  if (fx.may_release_pin && state.pin != PinReason::none) state.check_pin = true;
  if (fx.drops_all_prepared) {
    if (state.statements) state.statements->clear();
    server.statements().clear();
  }
  if (fx.pin == PinReason::none || state.pin != PinReason::none) return false;
  if (state.settings.session_pooling) return false;  // the client has its server for good already
  if (state.settings.refuse_session_state) {
    state.meter.pin_refused();
    return true;
  }
  state.pin = fx.pin;
  state.meter.pinned(static_cast<std::size_t>(fx.pin));
  if (state.info != nullptr) state.info->pinned.store(to_string(fx.pin));
  spdlog::info("{} pinned to server {}: {}", label, server.label(), to_string(fx.pin));
  return false;
}

std::string ClientInspector::refusal_sql(PinReason why) {
  return std::string(
             "DO $pgmux$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'pgmux: ") +
         to_string(why) +
         " needs a session and pin_session_state = \"error\" refuses it', "
         "HINT = 'use session pooling for this client'; END$pgmux$";
}

void ClientInspector::on_parse(std::string_view body) {
  auto p = pr::decode_parse(body);
  if (!p) {
    violation = true;
    return;
  }
  if (!p->name.empty()) state.meter.client_parse();  // named statements only, as PgBouncer
  // Drivers send SET, LISTEN or DEALLOCATE through the extended protocol too.
  const StatementEffects fx = scan_statement_effects(p->query);
  if (p->name.empty()) {
    on_unnamed_parse(body, *p, fx);
    return;
  }
  if (state.settings.session_pooling) {
    // The client's server is its own: its statement keeps its name there (visible in
    // pg_prepared_statements, as without a pooler), and Bind, Describe and Close of it
    // pass through untouched.
    apply_effects(fx);
    return;
  }
  auto def = state.client_statements().define(p->name, body, fx);
  apply_effects(fx);  // a refusal comes when the statement is bound
  begin_edit();
  live.expect.pop_back();  // answered as the Parse ensure_prepared sends
  ensure_prepared(*def, true);
  end_edit(body);
}

void ClientInspector::on_unnamed_parse(std::string_view body, const pr::Parse& parse,
                                       const StatementEffects& fx) {
  const std::size_t types_at = 1 + parse.query.size() + 1;
  if (apply_effects(fx)) {
    begin_edit();
    pr::MessageWriter(live.scratch)
        .begin(pr::fe::kParse)
        .cstring("")
        .cstring(refusal_sql(fx.pin))
        .bytes(body.substr(types_at))
        .end();
    end_edit(body);
    return;
  }
  const StatementDef* def =
      fx.deallocate_name.empty() ? nullptr : state.find_statement(fx.deallocate_name);
  if (def == nullptr) return;
  // DEALLOCATE of a protocol-level statement: deallocate its server-side name.
  const std::string server_name = def->server_name;
  begin_edit();
  live.expect.pop_back();  // the client's Parse is answered after pgmux's own
  ensure_prepared(*def, false);
  live.expect.push({Expect::parse});
  pr::MessageWriter(live.scratch)
      .begin(pr::fe::kParse)
      .cstring("")
      .cstring("DEALLOCATE " + server_name)
      .bytes(body.substr(types_at))
      .end();
  end_edit(body);
  server.statements().erase(server_name);
  state.erase_statement(fx.deallocate_name);
}

void ClientInspector::on_bind(std::string_view body, std::size_t length) {
  auto b = pr::decode_bind(body);
  if (!b) {
    violation = true;
    return;
  }
  if (b->statement.empty()) return;
  state.meter.bind();
  const StatementDef* def = state.find_statement(b->statement);
  if (def == nullptr) return;  // the server reports the unknown name, as PostgreSQL would
  const std::size_t names = b->portal.size() + 1 + b->statement.size() + 1;
  if (apply_effects(def->effects)) {
    refuse_bind(body, length, b->portal, names, def->effects.pin);
    return;
  }
  begin_edit();
  ensure_prepared(*def, false);
  // Only the names are rewritten; the parameters follow from the client's own bytes.
  pr::append_bind_head(live.scratch, b->portal, def->server_name, length - names);
  end_edit(body, names);
  live.last_bound = def->server_name;
}

void ClientInspector::refuse_bind(std::string_view body, std::size_t length,
                                  std::string_view portal, std::size_t names, PinReason pin) {
  begin_edit();
  pr::MessageWriter(live.scratch)
      .begin(pr::fe::kParse)
      .cstring("")
      .cstring(refusal_sql(pin))
      .int16(0)
      .end();
  live.expect.push({Expect::parse, true});
  if (body.size() < length) {
    pr::append_bind_head(live.scratch, portal, "", length - names);
    end_edit(body, names);
    return;
  }
  pr::MessageWriter(live.scratch)
      .begin(pr::fe::kBind)
      .cstring(portal)
      .cstring("")
      .int16(0)
      .int16(0)
      .int16(0)
      .end();
  end_edit(body, body.size());
}

void ClientInspector::on_describe(std::string_view body) {
  auto d = pr::decode_describe(body);
  if (!d) {
    violation = true;
    return;
  }
  if (d->kind != 'S' || d->name.empty()) return;
  const StatementDef* def = state.find_statement(d->name);
  if (def == nullptr) return;
  begin_edit();
  ensure_prepared(*def, false);
  pr::append_describe(live.scratch, 'S', def->server_name);
  end_edit(body);
}

void ClientInspector::on_close(std::string_view body) {
  auto c = pr::decode_close(body);
  if (!c) {
    violation = true;
    return;
  }
  if (c->kind != 'S' || c->name.empty() || !state.erase_statement(c->name)) return;
  // The server-side statement stays for other clients; the client gets its CloseComplete.
  begin_edit();
  pr::append_close(live.scratch, 'P', kNoopPortal);
  end_edit(body);
}

}  // namespace pgmux::pooler
