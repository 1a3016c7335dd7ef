#include "platform/os/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace warden::os {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Result<EventLoop> EventLoop::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (epoll.get() < 0 || wake.get() < 0)
    return fail(ErrorCode::kIo, "epoll/eventfd: " + errno_text());
  EventLoop loop(std::move(epoll), std::move(wake));
  WARDEN_TRY_STATUS(loop.add_readable(loop.wake_.get()));
  return loop;
}

Status EventLoop::add_readable(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail(ErrorCode::kIo, "epoll_ctl: " + errno_text());
  }
  return ok();
}

Result<int> EventLoop::add_timer(std::chrono::milliseconds interval) {
  if (interval.count() <= 0) {
    return fail(ErrorCode::kInvalidArgument, "expected a positive poll interval, found " +
                                                 std::to_string(interval.count()) + " ms");
  }
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (timer.get() < 0) return fail(ErrorCode::kIo, "timerfd_create: " + errno_text());
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>((interval.count() % 1000) * 1000000);
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) {
    return fail(ErrorCode::kIo, "timerfd_settime: " + errno_text());
  }
  WARDEN_TRY_STATUS(add_readable(timer.get()));
  const int id = timer.get();
  timers_.push_back(std::move(timer));
  return id;
}

void EventLoop::wake() const {
  const std::uint64_t one = 1;
  // A full eventfd counter still wakes the thread, so a failed write needs no handling.
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

Result<std::vector<int>> EventLoop::wait() {
  std::array<epoll_event, 8> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::kIo, "epoll_wait: " + errno_text());
    }
    std::vector<int> ready;
    ready.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      const bool timer = std::any_of(timers_.begin(), timers_.end(),
                                     [&](const UniqueFd& t) { return t.get() == fd; });
      if (timer || fd == wake_.get()) {
        std::uint64_t value = 0;
        [[maybe_unused]] auto r = ::read(fd, &value, sizeof value);
      }
      ready.push_back(fd);
    }
    return ready;
  }
}

}  // namespace warden::os
