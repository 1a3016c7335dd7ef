#include "platform/os/service_notify.h"

#include <string>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

namespace warden::os {
namespace {
void send(const std::string& message) { (void)sd_notify(0, message.c_str()); }
}  // namespace

void ServiceNotifier::ready(std::string_view status) const {
  send(fmt::format("READY=1\nSTATUS={}", status));
}
void ServiceNotifier::status(std::string_view status) const {
  send(fmt::format("STATUS={}", status));
}
void ServiceNotifier::reloading() const { send("RELOADING=1"); }
void ServiceNotifier::stopping() const { send("STOPPING=1"); }
void ServiceNotifier::watchdog() const { send("WATCHDOG=1"); }
void ServiceNotifier::extend_timeout(std::chrono::microseconds by) const {
  send(fmt::format("EXTEND_TIMEOUT_USEC={}", by.count()));
}

std::optional<std::chrono::microseconds> ServiceNotifier::watchdog_ping_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace warden::os
