#include "platform/os/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

namespace warden::os {
namespace {

// A datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = "/tmp/warden-notify-" + std::to_string(getpid()) + ".sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    unlink(path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);  // NOLINT
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
    unlink(path_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  NotifySocket(NotifySocket&&) = delete;
  NotifySocket& operator=(NotifySocket&&) = delete;
  std::string receive() {
    char buf[512];
    ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(ServiceNotifier, SendsReadyWithStatus) {
  NotifySocket socket;
  ServiceNotifier notifier;
  notifier.ready("serving");
  EXPECT_EQ(socket.receive(), "READY=1\nSTATUS=serving");
  notifier.watchdog();
  EXPECT_EQ(socket.receive(), "WATCHDOG=1");
}

TEST(ServiceNotifier, WatchdogIntervalIsHalfOfWatchdogSec) {
  setenv("WATCHDOG_USEC", "4000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  auto interval = ServiceNotifier::watchdog_ping_interval();
  ASSERT_TRUE(interval.has_value());
  EXPECT_EQ(interval->count(), 2000000);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  EXPECT_FALSE(ServiceNotifier::watchdog_ping_interval().has_value());
}

}  // namespace
}  // namespace warden::os
