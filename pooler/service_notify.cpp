#include "pooler/service_notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace pgmux::pooler {

namespace {

void notify(const std::string& state) {
  // 0: not started by systemd (nothing to tell); negative: the socket refused the message.
  if (const int r = sd_notify(0, state.c_str()); r < 0) {
    spdlog::warn("systemd notification \"{}\" failed: error {}", state, -r);
  }
}

}  // namespace

ServiceNotifier::ServiceNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_period_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotifier::ready(const std::string& status) const {
  notify("READY=1\nSTATUS=" + status);
}

void ServiceNotifier::reloading() const {
  // systemd 253+ (Type=notify-reload) wants the time with RELOADING=1; older ones ignore it.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

void ServiceNotifier::stopping() const {
  notify("STOPPING=1\nSTATUS=draining: no new clients, sessions finishing");
}

void ServiceNotifier::alive() const {
  notify("WATCHDOG=1");
}

}  // namespace pgmux::pooler
