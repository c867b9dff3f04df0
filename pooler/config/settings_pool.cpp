// The rows of the settings table for [pool] and [routing].
#include <array>

#include "pooler/config/settings.hpp"

namespace pgmux::pooler {

namespace {

constexpr std::int64_t kMaxMs = 7LL * 24 * 3600 * 1000;  // a week
constexpr auto after_restart = Applies::after_restart;

constexpr std::array<std::string_view, 3> kModes = {"session", "transaction", "statement"};
constexpr std::array<std::string_view, 2> kPinPolicies = {"pin", "error"};
constexpr std::array<std::string_view, 2> kOnOff = {"off", "on"};
constexpr std::array<std::string_view, 3> kPrimaryReads = {"never", "fallback", "always"};
constexpr std::array<std::string_view, 2> kBalancing = {"round_robin", "least_connections"};
constexpr std::array<std::string_view, 3> kReadYourWrites = {"off", "client", "user"};
constexpr std::array<std::string_view, 2> kOnNoReplica = {"primary", "error"};

using P = PoolSettings;
using R = RoutingSettings;

// A duration in milliseconds from `min` to a week.
Setting<P> pool_ms(Setting<P> row, std::int64_t min = 0) {
  row.min = min;
  row.max = kMaxMs;
  return row;
}

}  // namespace

std::span<const Setting<PoolSettings>> pool_settings() {
  static const std::vector<Setting<P>> rows = {
      bind<&P::mode>({.key = "mode",
                      .doc = "`session` (a client keeps its server), `transaction` (a server per "
                             "transaction) or `statement` (transaction pooling that refuses "
                             "transaction blocks with 0A000)",
                      .choices = kModes,
                      .console_name = "pool_mode"}),
      bind<&P::size>({.key = "size",
                      .doc = "server connections per (database, user), in total across workers",
                      .min = 1,
                      .max = 100000,
                      .console_name = "default_pool_size"}),
      bind<&P::max_client_conn>({.key = "max_client_conn",
                                 .doc = "client connections accepted in total",
                                 .min = 1,
                                 .max = 1000000}),
      bind<&P::min_pool_size>(
          {.key = "min_pool_size",
           .doc = "server connections each pool keeps open even when idle (opened one per "
                  "second per worker once the pool exists)",
           .min = 0,
           .max = 100000}),
      bind<&P::reserve_pool_size>(
          {.key = "reserve_pool_size",
           .doc = "extra connections a pool may open for a client that waited "
                  "reserve_pool_timeout_ms; they close when they come back with nobody waiting",
           .min = 0,
           .max = 100000}),
      bind<&P::reserve_pool_timeout_ms>(pool_ms(
          {.key = "reserve_pool_timeout_ms", .doc = "wait before a client may use the reserve"})),
      bind<&P::max_db_connections>(
          {.key = "max_db_connections",
           .applies = after_restart,
           .doc = "server connections per database across all users (0 = no cap); a pool at the "
                  "cap closes another pool's idle connection to make room",
           .min = 0,
           .max = 1000000}),
      bind<&P::max_user_connections>(
          {.key = "max_user_connections",
           .applies = after_restart,
           .doc = "server connections per user across all databases (0 = no cap)",
           .min = 0,
           .max = 1000000}),
      bind<&P::server_login_retry_ms>(pool_ms(
          {.key = "server_login_retry_ms",
           .doc = "after a failed server login, no new attempt for this long: a client that "
                  "needs a new connection gets the failure at once (0 = retry at once)"})),
      bind<&P::primary_wait_ms>(pool_ms(
          {.key = "primary_wait_ms",
           .doc = "while the primary refuses or drops connections (a restart: 57P03, 08006), a "
                  "client that starts a transaction waits this long for it, retrying, instead "
                  "of failing; then it gets the primary's error naming this setting (0 = fail "
                  "at once)"})),
      bind<&P::replica_pool_size>(
          {.key = "replica_pool_size",
           .doc = "server connections per replica pool (0 = same as the pool size)",
           .min = 0,
           .max = 100000}),
      bind<&P::query_wait_timeout_ms>(
          pool_ms({.key = "query_wait_timeout_ms",
                   .doc = "a client waiting this long for a server gets SQLSTATE 53300"},
                  1)),
      bind<&P::server_idle_timeout_ms>(
          pool_ms({.key = "server_idle_timeout_ms",
                   .doc = "close server connections idle this long (0 = never)"})),
      bind<&P::server_lifetime_ms>(
          pool_ms({.key = "server_lifetime_ms",
                   .doc = "close server connections this old when released (0 = never); each "
                          "one's lifetime is cut by a random 0-20 % so a burst's connections "
                          "do not reconnect together"})),
      bind<&P::server_connect_timeout_ms>(pool_ms(
          {.key = "server_connect_timeout_ms", .doc = "connect and log in to a server"}, 1)),
      bind<&P::server_reset_query>(
          {.key = "server_reset_query",
           .doc = "run before a server goes back to the pool in session mode"}),
      bind<&P::server_check_query>(
          {.key = "server_check_query",
           .doc = "run on a connection idle longer than server_check_delay_ms before reuse; one "
                  "that fails is closed and another used (\"\" = never)"}),
      bind<&P::server_check_delay_ms>(
          pool_ms({.key = "server_check_delay_ms",
                   .doc = "idle time after which the check runs (0 = before every reuse)"})),
      bind<&P::max_prepared_statements>(
          {.key = "max_prepared_statements",
           .doc = "transaction mode: named statements kept prepared per server connection (LRU)",
           .min = 1,
           .max = 100000}),
      bind<&P::idle_transaction_timeout_ms>(pool_ms(
          {.key = "idle_transaction_timeout_ms",
           .doc = "disconnect a client idle this long inside a transaction (25P03), rolling it "
                  "back; 0 = never"})),
      bind<&P::client_idle_timeout_ms>(
          pool_ms({.key = "client_idle_timeout_ms",
                   .doc = "disconnect a client idle this long while holding no server (57P05); 0 = "
                          "never. With a limit set an idle client waits in a timed read instead of "
                          "being parked, which costs a few kB more per client"})),
      bind<&P::query_timeout_ms>(pool_ms(
          {.key = "query_timeout_ms",
           .doc = "a request unanswered this long is cancelled on the server and its client "
                  "disconnected (57014); 0 = never"})),
      bind<&P::client_write_timeout_ms>(pool_ms(
          {.key = "client_write_timeout_ms",
           .doc = "a client whose socket has had no room for the answer being forwarded to it "
                  "for this long (it stopped reading) is closed and its server's request "
                  "cancelled, so it cannot hold a server; 0 = never"})),
      bind<&P::pin_session_state>(
          {.key = "pin_session_state",
           .doc = "transaction mode, for LISTEN, session advisory locks, temp tables, WITH HOLD "
                  "cursors and SQL PREPARE: `pin` keeps the client on its server until the state "
                  "is gone; `error` refuses such statements (0A000)",
           .choices = kPinPolicies}),
  };
  return rows;
}

std::span<const Setting<RoutingSettings>> routing_settings() {
  static const std::vector<Setting<R>> rows = {
      bind<&R::read_write_split>(
          {.key = "read_write_split",
           .doc = "reads outside transactions go to replicas (transaction and statement modes) "
                  "that are within the lag limits and have replayed the client's own writes; "
                  "`off`: everything on the primary",
           .choices = kOnOff,
           .per_database = true}),
      bind<&R::primary_reads>(
          {.key = "primary_reads",
           .doc = "`never`, `fallback` (only when no replica is eligible) or `always` (the "
                  "primary is one more candidate)",
           .choices = kPrimaryReads,
           .per_database = true}),
      bind<&R::load_balancing>(
          {.key = "load_balancing",
           .doc = "`round_robin` (smooth, weighted) or `least_connections` (fewest leased "
                  "connections per weight)",
           .choices = kBalancing,
           .per_database = true}),
      bind<&R::replica_read_timeout_ms>(
          {.key = "replica_read_timeout_ms",
           .doc = "a read a replica has not begun to answer after this long is cancelled there "
                  "and run on the primary when the replica's lag samples have gone stale (it "
                  "is frozen or cut off); a replica still answering its monitor is slow, not "
                  "gone, and is waited for another period; 0: never",
           .min = 0,
           .max = kMaxMs,
           .per_database = true}),
      bind<&R::replica_ban_ms>(
          {.key = "replica_ban_ms",
           .applies = after_restart,
           .doc = "a replica that refuses connections or drops one is left out this long",
           .min = 0,
           .max = kMaxMs,
           .per_database = true}),
      bind<&R::read_only_transactions_to_replicas>(
          {.key = "read_only_transactions_to_replicas",
           .doc = "BEGIN READ ONLY (and any transaction of a default_transaction_read_only "
                  "session) may run on a replica",
           .per_database = true}),
      bind<&R::write_functions>(
          {.key = "write_functions",
           .doc = "functions that make a statement a write, whatever pg_proc says",
           .per_database = true}),
      bind<&R::read_functions>({.key = "read_functions",
                                .doc = "functions that do not (pg_proc: volatile = write)",
                                .per_database = true}),
      bind<&R::lag_check_interval_ms>(
          {.key = "lag_check_interval_ms",
           .applies = after_restart,
           .doc = "how often the lag monitor samples each server (one query per server per "
                  "interval, on its own connections)",
           .min = 10,
           .max = kMaxMs,
           .per_database = true}),
      bind<&R::lag_stale_after_ms>(
          {.key = "lag_stale_after_ms",
           .applies = after_restart,
           .doc = "a replica whose last lag sample is older than this gets no new reads, even "
                  "while the monitor's query to it has not returned; that query, too, is given "
                  "this long",
           .min = 10,
           .max = kMaxMs,
           .per_database = true}),
      bind<&R::max_replica_lag_ms>(
          {.key = "max_replica_lag_ms",
           .applies = after_restart,
           .doc = "a replica further behind the primary (in time) is not used",
           .min = 0,
           .max = kMaxMs,
           .default_doc = "unset",
           .example = "1000",
           .per_database = true}),
      bind<&R::max_replica_lag_bytes>(
          {.key = "max_replica_lag_bytes",
           .applies = after_restart,
           .doc = "a replica further behind the primary (in WAL bytes) is not used",
           .min = 0,
           .max = 1LL << 50,
           .default_doc = "unset",
           .example = "16777216",
           .per_database = true}),
      bind<&R::readmit_ratio>(
          {.key = "readmit_ratio",
           .applies = after_restart,
           .doc = "an excluded replica returns below this share of the limits, so a lag "
                  "hovering near a limit does not flap",
           .min = 0,
           .max = 1,
           .per_database = true}),
      bind<&R::read_your_writes>(
          {.key = "read_your_writes",
           .doc = "after a write commits, the client's reads go only to replicas that replayed "
                  "it (`user`: for every client of the same database user; `off`)",
           .choices = kReadYourWrites,
           .per_database = true}),
      bind<&R::causal_wait_ms>(
          {.key = "causal_wait_ms",
           .doc = "how long a read may wait for a replica to replay the client's writes before "
                  "it goes to the primary",
           .min = 0,
           .max = 60000,
           .per_database = true}),
      bind<&R::on_no_replica_error>(
          {.key = "on_no_replica",
           .doc = "with primary_reads = \"never\": `error` refuses reads (57P03) when no "
                  "replica is eligible",
           .choices = kOnNoReplica,
           .per_database = true}),
      bind<&R::lag_monitor_user>({.key = "lag_monitor_user",
                                  .doc = "whose credentials the lag monitor logs in with; "
                                         "its queries need only LOGIN (a superuser is warned "
                                         "about at start)",
                                  .default_doc = "the first user with a password",
                                  .example = "\"app\""}),
  };
  return rows;
}

}  // namespace pgmux::pooler
