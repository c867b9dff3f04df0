// pgmux child-process management.
#include "pgmux_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "raw_client.hpp"

namespace pgmux::it {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// PGMUX_IT_CLIENT_TLS=1: every instance offers client TLS and every conninfo() asks for it
// (sslmode=require unless the test says otherwise), so the whole suite runs with TLS on both
// legs (the servers' leg is TLS anyway: server_tls_mode = prefer, and they have it).
bool client_tls_everywhere() {
  static const bool on = [] {
    const char* v = std::getenv("PGMUX_IT_CLIENT_TLS");
    return v != nullptr && std::string(v) == "1";
  }();
  return on;
}

// PGMUX_IT_SERVER_TLS=disable (or another server_tls_mode): the mode of every instance whose
// test does not choose one, so the engine's tests also run over plain TCP to the servers.
std::string server_tls_everywhere() {
  const char* v = std::getenv("PGMUX_IT_SERVER_TLS");
  return v != nullptr ? std::string(v) : std::string();
}

std::string make_config(const PgCluster& cluster, const PgmuxOptions& o, std::uint16_t port) {
  // PGMUX_IT_LOG_LEVEL=debug (or trace) raises every instance's log level, for debugging.
  const char* level_override = std::getenv("PGMUX_IT_LOG_LEVEL");
  const std::string log_level = level_override && *level_override ? level_override : o.log_level;
  std::ostringstream c;
  c << "[pgmux]\n"
    << "listen_addr = \"127.0.0.1\"\n"
    << "listen_port = " << port << "\n"
    << "workers = " << o.workers << "\n"
    << "admin_users = [\"admin\"]\n"
    << "log_level = \"" << log_level << "\"\n"
    << "shutdown_timeout_ms = " << o.shutdown_timeout_ms << "\n"
    << o.pgmux_toml << (o.pgmux_toml.empty() ? "" : "\n");
  if (client_tls_everywhere() && o.pgmux_toml.find("client_tls_mode") == std::string::npos) {
    const std::string tls = (cluster.dir() / "tls").string();
    c << "client_tls_mode = \"prefer\"\nclient_tls_cert_file = \"" << tls
      << "/pgmux.crt\"\nclient_tls_key_file = \"" << tls << "/pgmux.key\"\n";
  }
  const std::string server_tls = server_tls_everywhere();
  if (!server_tls.empty() && o.pgmux_toml.find("server_tls_mode") == std::string::npos &&
      o.extra_toml.find("server_tls_mode") == std::string::npos) {
    c << "server_tls_mode = \"" << server_tls << "\"\n";
  }
  c << "\n[pool]\n"
    << "mode = \"" << o.mode << "\"\n"
    << "size = 4\n"
    << "max_client_conn = " << o.max_client_conn << "\n"
    << "query_wait_timeout_ms = " << o.query_wait_timeout_ms << "\n"
    << o.pool_toml << (o.pool_toml.empty() ? "" : "\n") << "\n[routing]\n"
    << o.routing_toml << "\n"
    << "\n[databases.app]\n"
    << "primary = { host = \"127.0.0.1\", port = " << cluster.primary_port() << " }\n"
    << "replicas = [ { host = \"127.0.0.1\", port = " << cluster.replica_port() << " } ]\n"
    << "pool_size = " << o.pool_size << "\n"
    << o.database_toml << (o.database_toml.empty() ? "" : "\n");
  if (o.users_toml.empty()) {
    c << "\n[users.app]\npassword = \"secret\"\n"
      << "\n[users.md5user]\nauth = \"md5\"\npassword = \"md5pass\"\n"
      << "\n[users.pwuser]\npassword = \"pwpass\"\n"
      << "\n[users.admin]\npassword = \"adminpass\"\n";
  } else {
    c << "\n" << o.users_toml << "\n";
  }
  if (!o.extra_toml.empty()) c << "\n" << o.extra_toml << "\n";
  return c.str();
}

// pgmux serves the port once a CancelRequest (with a key nobody holds) is read and the
// connection closed by pgmux; unlike a bare connect this leaves no half-counted client behind.
bool probe_ready(std::uint16_t port) {
  try {
    RawClient c(port);
    c.send(cancel_request_packet(0, 0));
    std::string ignored;
    for (;;) {
      const auto st = c.read_some(ignored, milliseconds(2000));
      if (st == RawClient::Status::closed) return true;
      if (st != RawClient::Status::data) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

std::uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("cannot bind a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

PgmuxProcess::PgmuxProcess(TestEnv& env, PgmuxOptions options)
    : env_(env), options_(std::move(options)) {
  std::string failure;
  // A port picked by bind(0) can be taken by someone else before pgmux binds it: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (start_once(failure)) return;
  }
  throw std::runtime_error("pgmux did not start: " + failure);
}

bool PgmuxProcess::start_once(std::string& failure) {
  const auto stem = env_.unique_stem(options_.name);
  config_path_ = stem.string() + ".toml";
  log_path_ = stem.string() + ".log";
  port_ = options_.port != 0 ? options_.port : pick_free_port();
  config_text_ = make_config(options_.cluster != nullptr ? *options_.cluster : env_.cluster(),
                             options_, port_);
  {
    std::ofstream out(config_path_);
    out << config_text_;
    if (!out) throw std::runtime_error("cannot write " + config_path_.string());
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  // PGMUX_TEST_BINARY runs the suite against another build of pgmux (a sanitizer build).
  const char* override_binary = std::getenv("PGMUX_TEST_BINARY");
  const std::string binary = override_binary != nullptr ? override_binary : PGMUX_BINARY,
                    config = config_path_.string(), log = log_path_.string();
  std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("--config"),
                             const_cast<char*>(config.c_str()), nullptr};
  // The test's own entries first and alone: getenv() takes the first of a name, and an
  // inherited NOTIFY_SOCKET must not win over the test's.
  std::vector<char*> envp;
  for (const std::string& e : options_.env) envp.push_back(const_cast<char*>(e.c_str()));
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view inherited(*e);
    const auto named = [&](const std::string& own) {
      return inherited.substr(0, inherited.find('=') + 1) == own.substr(0, own.find('=') + 1);
    };
    if (std::none_of(options_.env.begin(), options_.env.end(), named)) envp.push_back(*e);
  }
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test binary
    if (::getppid() != parent) ::_exit(127);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (fd > 2) ::close(fd);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  pid_ = pid;
  exit_status_.reset();
  const auto deadline = Clock::now() + milliseconds(10000);
  while (Clock::now() < deadline) {
    if (!running()) {
      failure = "pgmux " + describe_wait_status(*exit_status_) + " during startup\n" + log_tail();
      return false;
    }
    // On a shared port (so_reuseport) a sibling may answer the probe: this one's log decides.
    if (probe_ready(port_) &&
        (options_.port == 0 || this->log().find("pgmux listening") != std::string::npos)) {
      return true;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  failure = "pgmux did not accept connections on port " + std::to_string(port_) + " within 10 s\n" +
            log_tail();
  stop();
  throw std::runtime_error(failure);
}

int PgmuxProcess::count_in_log(const std::string& text) const {
  const std::string whole = log();
  int n = 0;
  for (std::size_t at = whole.find(text); at != std::string::npos; at = whole.find(text, at + 1)) {
    ++n;
  }
  return n;
}

PgmuxProcess::~PgmuxProcess() {
  stop();
}

std::string PgmuxProcess::conninfo(const std::string& user, const std::string& password,
                                   const std::string& dbname, const std::string& extra) const {
  std::string s = "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user +
                  " dbname=" + dbname + " connect_timeout=10 gssencmode=disable sslmode=" +
                  (client_tls_everywhere() ? "require" : "disable");
  if (!password.empty()) s += " password=" + password;
  if (!extra.empty()) s += " " + extra;
  return s;
}

std::string PgmuxProcess::log() const {
  return read_file(log_path_);
}

std::string PgmuxProcess::log_tail(int lines) const {
  std::istringstream in(log());
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(std::move(line));
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out =
      "--- last " + std::to_string(tail.size()) + " lines of " + log_path_.string() + " ---\n";
  for (const auto& l : tail) out += l + "\n";
  return out;
}

bool PgmuxProcess::wait_for_log(const std::string& text, milliseconds bound) const {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    if (log().find(text) != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

namespace {
long status_field_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}
}  // namespace

long PgmuxProcess::peak_rss_kb() const {
  return status_field_kb(pid_, "VmHWM:");
}

long PgmuxProcess::rss_kb() const {
  return status_field_kb(pid_, "VmRSS:");
}

int PgmuxProcess::open_fds() const {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid_) + "/fd", ec);
  if (ec) return -1;
  int n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) ++n;
  return n;
}

std::string PgmuxProcess::resources() const {
  return "RSS " + std::to_string(rss_kb()) + " kB, " + std::to_string(open_fds()) + " fds";
}

void PgmuxProcess::send_signal(int sig) const {
  if (pid_ > 0 && !exit_status_) ::kill(pid_, sig);
}

bool PgmuxProcess::running() {
  if (pid_ <= 0 || exit_status_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = status;
    return false;
  }
  return r == 0;
}

std::optional<int> PgmuxProcess::wait_exit(milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    if (!running()) return exit_status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

std::optional<int> PgmuxProcess::stop() {
  if (!running()) return exit_status_;
  send_signal(SIGTERM);
  if (auto st = wait_exit(milliseconds(8000))) return st;
  ::kill(pid_, SIGKILL);
  return wait_exit(milliseconds(5000));
}

void PgmuxProcess::rewrite_config(const std::string& text) {
  std::ofstream out(config_path_, std::ios::trunc);
  out << text;
  config_text_ = text;
}

}  // namespace pgmux::it
