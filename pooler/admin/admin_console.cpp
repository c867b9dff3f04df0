// Admin console sessions: the login greeting, the permission gate (stats_users may SHOW,
// admin_users may do everything) and dispatch to the SHOW views and control commands.
#include "pooler/admin/admin_console.hpp"

#include <algorithm>
#include <cctype>

#include <spdlog/spdlog.h>

#include "pooler/admin/admin_commands.hpp"
#include "pooler/admin/admin_views.hpp"
#include "pooler/runtime.hpp"
#include "pooler/session/client_session.hpp"
#include "pooler/version.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

// Upper-cased command with the trailing ';' and surrounding blanks removed.
std::string normalize(std::string_view sql) {
  std::string s(sql);
  while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == ';')) {
    s.pop_back();
  }
  const auto first = s.find_first_not_of(" \t\r\n");
  s.erase(0, first == std::string::npos ? s.size() : first);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  // Collapse runs of whitespace so "SHOW   POOLS" matches.
  std::string out;
  for (char c : s) {
    const bool space = std::isspace(static_cast<unsigned char>(c));
    if (space && (out.empty() || out.back() == ' ')) continue;
    out.push_back(space ? ' ' : c);
  }
  return out;
}

}  // namespace

awaitable<void> run_admin_console(Runtime& rt, FramedSocket& client, const Config& config,
                                  const std::string& user, const std::string& label) {
  if (!config.is_stats_user(user)) {
    throw SessionError("28000", "user \"" + user + "\" is not allowed to use the admin console");
  }
  struct Counted {
    std::atomic<int>& n;
    explicit Counted(std::atomic<int>& c) : n(c) { ++n; }
    ~Counted() { --n; }
  } counted(rt.console_sessions());
  std::string out;
  pr::append_parameter_status(out, "server_version", kPgCompatVersion);
  pr::append_parameter_status(out, "client_encoding", "UTF8");
  pr::append_parameter_status(out, "server_encoding", "UTF8");
  pr::append_parameter_status(out, "DateStyle", "ISO, MDY");
  pr::append_parameter_status(out, "integer_datetimes", "on");
  pr::append_parameter_status(out, "standard_conforming_strings", "on");
  pr::append_backend_key_data(out, 0, 0);
  pr::append_ready_for_query(out, 'I');
  co_await client.write(out);
  spdlog::info("{} admin console session", label);
  for (;;) {
    const pr::Frame f = co_await client.read_tagged();
    out.clear();
    bool exit_after = false;
    if (f.tag == pr::fe::kTerminate) co_return;
    if (f.tag == pr::fe::kQuery) {
      auto sql = pr::decode_query(f.body);
      if (!sql) throw ProtocolError("malformed Query message");
      const std::string cmd = normalize(*sql);
      const auto now = rt.config();  // RELOAD and SET take effect for the next command
      const bool admin_only = !cmd.starts_with("SHOW") && !cmd.empty();
      if (admin_only && !now->is_admin(user)) {
        pr::append_error(out, {.severity = "ERROR",
                               .sqlstate = "42501",
                               .message = "only admin_users may run this command; stats_users "
                                          "may run SHOW"});
      } else if (cmd.empty()) {
        pr::append_empty_query(out);
      } else if (cmd.starts_with("SHOW ")) {
        if (!append_show(rt, *now, cmd, out)) {
          pr::append_error(out, {.severity = "ERROR",
                                 .sqlstate = "42601",
                                 .message = "unknown SHOW command",
                                 .hint = "SHOW HELP lists the commands"});
        }
      } else {
        const CommandResult r = co_await run_command(rt, *now, cmd, *sql, out);
        if (!r.handled) {
          pr::append_error(out, {.severity = "ERROR",
                                 .sqlstate = "42601",
                                 .message = "unknown or unsupported admin console command",
                                 .hint = "SHOW HELP lists the commands"});
        }
        exit_after = r.exit_after;
      }
    } else if (f.tag == pr::fe::kSync) {
      pr::append_error(out,
                       {.severity = "ERROR",
                        .sqlstate = "08P01",
                        .message = "the admin console supports only the simple query protocol"});
    } else {
      continue;  // extended-protocol messages are answered at their Sync
    }
    pr::append_ready_for_query(out, 'I');
    co_await client.write(out);
    if (exit_after) rt.exit_now("SHUTDOWN from the admin console");
  }
}

}  // namespace pgmux::pooler
