#pragma once
// One thread's wait: epoll over readable descriptors, periodic timers (timerfd) and a wake-up
// (eventfd), so that callers need none of those headers.

#include <chrono>
#include <vector>

#include "platform/base/error.h"
#include "platform/os/unique_fd.h"

namespace warden::os {

class EventLoop {
 public:
  /// Errors: epoll_create1 or eventfd failed.
  static Result<EventLoop> create();

  /// A periodic timer, first firing one interval from now. Returns its id (for wait()).
  /// kInvalidArgument for a non-positive interval.
  Result<int> add_timer(std::chrono::milliseconds interval);
  /// Reports `fd` (which the caller owns and keeps open) as ready when it is readable.
  Status add_readable(int fd);
  /// Makes the current or next wait() return kWoken among its ids. Thread-safe.
  void wake() const;

  /// The id wait() returns for wake().
  [[nodiscard]] int wake_id() const { return wake_.get(); }
  /// Blocks until something is ready; returns the ids (timer ids, readable fds, wake_id()) of what
  /// is, timers and the wake-up already consumed. Errors: epoll_wait failed (not EINTR).
  Result<std::vector<int>> wait();

 private:
  EventLoop(UniqueFd epoll, UniqueFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}
  UniqueFd epoll_;
  UniqueFd wake_;
  std::vector<UniqueFd> timers_;
};

}  // namespace warden::os
