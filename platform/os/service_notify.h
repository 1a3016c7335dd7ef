#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace warden::os {

/// sd_notify(3) for a Type=notify service. Every call is a no-op when NOTIFY_SOCKET is unset
/// (not run by systemd), so daemons call these unconditionally.
class ServiceNotifier {
 public:
  /// READY=1 plus a STATUS= line.
  void ready(std::string_view status) const;
  /// STATUS= line shown by systemctl status.
  void status(std::string_view status) const;
  void reloading() const;
  void stopping() const;
  void watchdog() const;
  /// EXTEND_TIMEOUT_USEC= for slow first-start work (key creation).
  void extend_timeout(std::chrono::microseconds by) const;

  /// Half of WatchdogSec= when the unit asks for watchdog pings, nullopt otherwise.
  [[nodiscard]] static std::optional<std::chrono::microseconds> watchdog_ping_interval();
};

}  // namespace warden::os
