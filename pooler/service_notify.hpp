// What systemd is told about the process (Type=notify): ready once it serves clients,
// reloading and ready again around a RELOAD, stopping once it drains, and alive (the watchdog)
// while every worker's event loop still runs handlers. Outside systemd (no NOTIFY_SOCKET)
// every call is a no-op.
#pragma once

#include <chrono>
#include <string>

namespace pgmux::pooler {

class ServiceNotifier {
 public:
  ServiceNotifier();
  void ready(const std::string& status) const;
  void reloading() const;
  void stopping() const;
  void alive() const;
  // How often alive() must be called: half of WatchdogSec, zero when systemd asked for no
  // watchdog.
  [[nodiscard]] std::chrono::microseconds watchdog_period() const { return watchdog_period_; }

 private:
  std::chrono::microseconds watchdog_period_{0};
};

}  // namespace pgmux::pooler
