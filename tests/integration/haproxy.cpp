#include "haproxy.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pgmux_process.hpp"

namespace pgmux::it {

namespace {

bool accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Haproxy::Haproxy(TestEnv& env, const std::vector<std::uint16_t>& backends) {
  port_ = pick_free_port();
  const std::string stem = env.unique_stem("haproxy").string();
  const std::string config = stem + ".cfg";
  log_path_ = stem + ".log";
  {
    std::ofstream c(config);
    c << "global\n  maxconn 2000\n"
      << "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n"
      << "  timeout server 60s\n"
      << "frontend fleet\n  bind 127.0.0.1:" << port_ << "\n  default_backend pgmux\n"
      << "backend pgmux\n  balance roundrobin\n";
    for (std::size_t i = 0; i < backends.size(); ++i) {
      c << "  server pgmux" << i << " 127.0.0.1:" << backends[i] << "\n";
    }
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execl("/usr/sbin/haproxy", "haproxy", "-f", config.c_str(), "-db", nullptr);
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (accepts(port_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  throw std::runtime_error("haproxy did not start:\n" + read_file(log_path_));
}

Haproxy::~Haproxy() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
}

std::string Haproxy::conninfo(const std::string& extra) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) +
         " dbname=app user=app password=secret sslmode=disable gssencmode=disable "
         "connect_timeout=10 " +
         extra;
}

}  // namespace pgmux::it
