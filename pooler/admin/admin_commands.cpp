// Admin console control commands. Each either answers at once or awaits what it waits for
// (running transactions for PAUSE/SUSPEND, marked servers for WAIT_CLOSE) by polling: the
// state it watches is spread over every worker, and polling needs no wake-up bookkeeping.
#include "pooler/admin/admin_commands.hpp"

#include <cctype>

#include <spdlog/spdlog.h>

#include "pooler/runtime.hpp"
#include "protocol/message_writer.hpp"

namespace pgmux::pooler {

namespace pr = protocol;

namespace {

// The words after the command's first `skip` words, as typed ("PAUSE app" → "app").
std::string argument(std::string_view sql, int skip = 1) {
  std::string s(sql);
  while (!s.empty() && (s.back() == ';' || std::isspace(static_cast<unsigned char>(s.back())))) {
    s.pop_back();
  }
  std::size_t at = s.find_first_not_of(" \t\r\n");
  for (int i = 0; i < skip && at != std::string::npos; ++i) {
    const auto space = s.find_first_of(" \t\r\n", at);
    at = space == std::string::npos ? space : s.find_first_not_of(" \t\r\n", space);
  }
  return at == std::string::npos ? "" : s.substr(at);
}

void error(std::string& out, const char* sqlstate, std::string message) {
  pr::append_error(out, {.severity = "ERROR", .sqlstate = sqlstate, .message = std::move(message)});
}

std::string scope(const std::string& db) {
  return db.empty() ? std::string("(all databases)") : db;
}

// Polls `done` every 10 ms on the console's executor.
template <class Done>
awaitable<void> poll_until(Done done) {
  Timer poll(co_await asio::this_coro::executor);
  while (!done()) {
    poll.expires_after(Millis(10));
    co_await poll.async_wait(as_result);
  }
}

// Marks the servers of `db` (all when empty) close_needed and closes the idle ones now.
int reconnect(Runtime& rt, const std::string& db) {
  const int marked = rt.pools().servers().mark_close_needed(db);
  int closed = 0;
  for (const auto& pool : rt.pools().all()) {
    if (db.empty() || pool->database() == db) closed += pool->close_marked_idle();
  }
  spdlog::info("RECONNECT {}: {} server connection(s) to close, {} idle ones closed now", scope(db),
               marked, closed);
  return marked;
}

// KILL db: every client of the database is closed (FATAL 57P01 for those between requests),
// its servers are closed, and new clients wait until RESUME, as in PgBouncer.
void kill_database(Runtime& rt, const std::string& db) {
  rt.pools().set_paused(db, true);
  for (const auto& pool : rt.pools().all()) {
    if (pool->database() == db) pool->fail_waiters("57P01", kAdminFarewell);
  }
  int clients = 0;
  for (const auto& c : rt.clients().snapshot()) {
    if (c->database() != db) continue;
    c->kill(kAdminFarewell, false);
    ++clients;
  }
  spdlog::info("KILL {}: closing {} client(s); new clients wait for RESUME", db, clients);
  reconnect(rt, db);
}

bool ban(Runtime& rt, bool on, const std::string& arg) {
  // BAN host:port (every database using that replica) or BAN db host:port.
  std::string db, target = arg;
  if (const auto sp = arg.find(' '); sp != std::string::npos) {
    db = arg.substr(0, sp);
    target = arg.substr(arg.find_first_not_of(' ', sp));
  }
  int hits = 0;
  for (const auto& r : rt.pools().routings()) {
    if (!db.empty() && r->name() != db) continue;
    for (int i = 0; i < r->replica_count(); ++i) {
      const Endpoint& e = r->replica_endpoint(i);
      if (e.host + ":" + std::to_string(e.port) != target) continue;
      r->set_manual_ban(i, on);
      ++hits;
    }
  }
  return hits > 0;
}

// SET key = value / SET key TO value.
void set(Runtime& rt, std::string_view sql, std::string& out) {
  const std::string rest = argument(sql);
  std::size_t key_end = rest.find_first_of(" \t=");
  const std::string key = rest.substr(0, key_end);
  std::string value = key_end == std::string::npos ? "" : rest.substr(key_end);
  value.erase(0, value.find_first_not_of(" \t"));
  if (value.starts_with('=')) {
    value.erase(0, 1);
  } else if (value.size() > 2 && std::toupper(static_cast<unsigned char>(value[0])) == 'T' &&
             std::toupper(static_cast<unsigned char>(value[1])) == 'O' &&
             std::isspace(static_cast<unsigned char>(value[2]))) {
    value.erase(0, 2);
  } else {
    return error(out, "42601", "expected SET key = value");
  }
  value.erase(0, value.find_first_not_of(" \t"));
  if (key.empty() || value.empty()) return error(out, "42601", "expected SET key = value");
  std::string lower = key;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const Runtime::SetResult r = rt.set_setting(lower, value);
  if (!r.sqlstate.empty()) return error(out, r.sqlstate.c_str(), r.message);
  pr::append_command_complete(out, "SET");
}

// PAUSE [db]: holds new transactions and returns once every server connection of the affected
// pools is back (running transactions finish). SUSPEND also holds new connections.
awaitable<void> pause(Runtime& rt, const std::string& db, bool suspend, std::string& out) {
  if (suspend && !rt.set_suspended(true)) {
    error(out, "55000", "pgmux is already suspended");
    co_return;
  }
  rt.pools().set_paused(db, true);
  spdlog::info("{} {}: waiting for active transactions to finish", suspend ? "SUSPEND" : "PAUSE",
               scope(db));
  co_await poll_until([&] { return rt.pools().active_servers(db) == 0; });
  spdlog::info("{} {}: done", suspend ? "SUSPEND" : "PAUSE", scope(db));
  pr::append_command_complete(out, suspend ? "SUSPEND" : "PAUSE");
}

void resume(Runtime& rt, const std::string& db, std::string& out) {
  const bool was_suspended = db.empty() && rt.set_suspended(false);
  if (!rt.pools().set_paused(db, false) && !was_suspended) {
    return error(out, "55000",
                 db.empty() ? "pgmux is not paused" : "database \"" + db + "\" is not paused");
  }
  spdlog::info("RESUME {}", scope(db));
  pr::append_command_complete(out, "RESUME");
}

}  // namespace

awaitable<CommandResult> run_command(Runtime& rt, const Config& config, const std::string& cmd,
                                     std::string_view sql, std::string& out) {
  CommandResult result{.handled = true};
  const std::string verb = cmd.substr(0, cmd.find(' '));
  const std::string arg = argument(sql);
  const bool known_db = !arg.empty() && config.find_database(arg) != nullptr;
  auto no_such_database = [&] {
    error(out, "3D000", "database \"" + arg + "\" does not exist in pgmux");
  };
  if (verb == "PAUSE" || verb == "RESUME" || verb == "RECONNECT" || verb == "WAIT_CLOSE") {
    if (!arg.empty() && !known_db) {
      no_such_database();
      co_return result;
    }
    if (verb == "PAUSE") {
      co_await pause(rt, arg, false, out);
    } else if (verb == "RESUME") {
      resume(rt, arg, out);
    } else if (verb == "RECONNECT") {
      reconnect(rt, arg);
      pr::append_command_complete(out, "RECONNECT");
    } else {
      const int left = rt.pools().servers().count_close_needed(arg);
      spdlog::info("WAIT_CLOSE {}: waiting for {} server connection(s) to close", scope(arg), left);
      co_await poll_until([&] { return rt.pools().servers().count_close_needed(arg) == 0; });
      pr::append_command_complete(out, "WAIT_CLOSE");
    }
  } else if (cmd == "SUSPEND") {
    co_await pause(rt, "", true, out);
  } else if (verb == "DISABLE" || verb == "ENABLE" || verb == "KILL") {
    if (!known_db) {
      if (arg.empty()) {
        error(out, "42601", verb + " needs a database name");
      } else {
        no_such_database();
      }
      co_return result;
    }
    if (verb == "KILL") {
      kill_database(rt, arg);
    } else {
      rt.set_disabled(arg, verb == "DISABLE");
      spdlog::info("{} {}", verb, arg);
    }
    pr::append_command_complete(out, verb);
  } else if (verb == "BAN" || verb == "UNBAN") {
    if (ban(rt, verb == "BAN", arg)) {
      pr::append_command_complete(out, verb);
    } else {
      error(out, "42704", "no replica \"" + arg + "\" is in use");
    }
  } else if (verb == "KILL_CLIENT") {
    if (arg.empty() || arg.size() > 19 ||
        arg.find_first_not_of("0123456789") != std::string::npos) {
      error(out, "22023", "KILL_CLIENT needs a client id (see SHOW CLIENTS)");
      co_return result;
    }
    const auto client = rt.clients().find(std::stoull(arg));
    if (!client) {
      error(out, "42704", "no client with id " + arg);
      co_return result;
    }
    spdlog::info("KILL_CLIENT {}: closing {}@{} {}", arg, client->user(), client->database(),
                 client->address);
    client->kill(kAdminFarewell, false);
    pr::append_command_complete(out, "KILL_CLIENT");
  } else if (verb == "SHUTDOWN") {
    if (cmd == "SHUTDOWN") {
      result.exit_after = true;
      pr::append_command_complete(out, "SHUTDOWN");
    } else if (cmd == "SHUTDOWN WAIT_FOR_SERVERS" || cmd == "SHUTDOWN WAIT_FOR_CLIENTS") {
      const bool servers = cmd.ends_with("SERVERS");
      spdlog::info("{}: no longer accepting; {}", cmd,
                   servers ? "closing clients as they release their servers"
                           : "waiting for every client to leave");
      rt.request_shutdown(servers ? Runtime::Drain::for_servers : Runtime::Drain::for_clients);
      pr::append_command_complete(out, "SHUTDOWN");
    } else {
      error(out, "42601", "expected SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]");
    }
  } else if (cmd == "RELOAD") {
    if (const std::string e = rt.reload(); !e.empty()) {
      pr::append_error(out, {.severity = "ERROR",
                             .sqlstate = "F0000",
                             .message = "configuration not reloaded: " + e,
                             .hint = "the running configuration stays in effect"});
    } else {
      pr::append_command_complete(out, "RELOAD");
    }
  } else if (verb == "SET") {
    set(rt, sql, out);
  } else {
    result.handled = false;
  }
  co_return result;
}

}  // namespace pgmux::pooler
