// Requests the session engine answers without a server (see transaction_session.hpp): a
// client holding no server cannot be in a transaction, so the statements it prepares or closes
// go into its own map (prepared on a server when first bound), and DEALLOCATE of one of them
// needs no server either.
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/session/transaction_session.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace {

// Whether "deallocate" appears in `sql` in any case: a cheap test before lexing it.
bool mentions_deallocate(std::string_view sql) {
  static constexpr std::string_view kWord = "deallocate";
  for (std::size_t i = 0; i + kWord.size() <= sql.size(); ++i) {
    if ((sql[i] | 0x20) != 'd') continue;
    std::size_t k = 1;
    while (k < kWord.size() && (sql[i + k] | 0x20) == kWord[k]) ++k;
    if (k == kWord.size()) return true;
  }
  return false;
}

}  // namespace

std::size_t TransactionSession::answer_without_server() {
  // A client that prepares a statement while holding no server (pgbench -M prepared does it
  // synchronously, blocking every other client of its thread) must not wait for a server just
  // for that: holding none, it cannot be in a transaction, so its statements go into its own
  // map and reach a server with their first Bind.
  const std::string_view unread = s_.client.buffer().unread();
  std::size_t pos = 0;
  live_->out.clear();
  struct Pending {
    bool parse;
    std::string_view name, body, query;
  };
  std::vector<Pending> steps;
  for (;;) {
    if (unread.size() - pos < pr::kTaggedHeaderSize) return 0;
    const char tag = unread[pos];
    const std::uint32_t length = pr::read_be32(unread.data() + pos + 1);
    if (length < 4 || length - 4 > 1024 * 1024) return 0;  // the normal path judges it
    if (unread.size() - pos - pr::kTaggedHeaderSize < length - 4) return 0;
    const std::string_view body = unread.substr(pos + pr::kTaggedHeaderSize, length - 4);
    const std::size_t next = pos + pr::kTaggedHeaderSize + (length - 4);
    if (tag == pr::fe::kParse) {
      auto p = pr::decode_parse(body);
      if (!p || p->name.empty()) return 0;
      steps.push_back({true, p->name, body, p->query});
    } else if (tag == pr::fe::kClose) {
      auto c = pr::decode_close(body);
      if (!c || c->kind != 'S' || c->name.empty()) return 0;
      steps.push_back({false, c->name, body, {}});
    } else if (tag == pr::fe::kSync && !steps.empty()) {
      for (const Pending& st : steps) {
        if (st.parse) {
          state_.client_statements().define(st.name, st.body, scan_statement_effects(st.query));
          state_.meter.client_parse();
          live_->out.append("1\0\0\0\4", 5);  // ParseComplete
        } else {
          state_.erase_statement(st.name);
          live_->out.append("3\0\0\0\4", 5);  // CloseComplete
        }
      }
      pr::append_ready_for_query(live_->out, 'I');
      return next;
    } else if (tag == pr::fe::kQuery && steps.empty()) {
      // Only DEALLOCATE of a statement the client has is answered here: most Queries are not
      // worth lexing twice (the inspector lexes each once).
      if (!state_.statements || state_.statements->size() == 0) return 0;
      auto sql = pr::decode_query(body);
      if (!sql || !mentions_deallocate(*sql)) return 0;
      const StatementEffects fx = scan_statement_effects(*sql);
      if (fx.deallocate_name.empty() || !state_.erase_statement(fx.deallocate_name)) return 0;
      pr::append_command_complete(live_->out, "DEALLOCATE");
      pr::append_ready_for_query(live_->out, 'I');
      return next;
    } else if (tag != pr::fe::kFlush) {
      return 0;
    }
    pos = next;
  }
}

}  // namespace pgmux::pooler
