#include "platform/os/inotify.h"

#include <sys/inotify.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace warden::os {
namespace {

std::uint32_t mask_of(WatchKind kind) {
  constexpr std::uint32_t kSubdirs =
      IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_MASK_ADD;
  constexpr std::uint32_t kFiles =
      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR | IN_MASK_ADD;
  switch (kind) {
    case WatchKind::kSubdirs:
      return kSubdirs;
    case WatchKind::kFiles:
      return kFiles;
    case WatchKind::kTree:
      return kFiles | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF;
  }
  return kSubdirs;
}

}  // namespace

Result<Inotify> Inotify::create() {
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (fd.get() < 0)
    return fail(ErrorCode::kIo, std::string("inotify_init1: ") + std::strerror(errno));
  return Inotify(std::move(fd));
}

Result<int> Inotify::add(const std::filesystem::path& dir, WatchKind kind) {
  const int wd = ::inotify_add_watch(fd_.get(), dir.c_str(), mask_of(kind));
  if (wd < 0) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                "inotify_add_watch " + dir.string() + ": " + std::strerror(errno));
  }
  return wd;
}

std::size_t Inotify::drain(const std::function<void(const FsEvent&)>& on_event) {
  alignas(inotify_event) std::array<char, 65536> buffer{};
  std::size_t count = 0;
  for (;;) {
    const ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return count;  // EAGAIN: drained
    }
    std::size_t offset = 0;
    const auto size = static_cast<std::size_t>(n);
    while (offset + sizeof(inotify_event) <= size) {
      inotify_event raw{};
      std::memcpy(&raw, buffer.data() + offset, sizeof raw);
      const char* name_start = buffer.data() + offset + sizeof raw;
      offset += sizeof raw + raw.len;
      FsEvent event;
      event.watch = raw.wd;
      event.name = std::string_view(name_start, strnlen(name_start, raw.len));
      event.is_dir = (raw.mask & IN_ISDIR) != 0;
      event.created = (raw.mask & IN_CREATE) != 0;
      event.moved_in = (raw.mask & IN_MOVED_TO) != 0;
      event.deleted = (raw.mask & IN_DELETE) != 0;
      event.moved_out = (raw.mask & IN_MOVED_FROM) != 0;
      event.self_gone = (raw.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
      event.ignored = (raw.mask & IN_IGNORED) != 0;
      event.overflow = (raw.mask & IN_Q_OVERFLOW) != 0;
      ++count;
      on_event(event);
    }
  }
}

}  // namespace warden::os
