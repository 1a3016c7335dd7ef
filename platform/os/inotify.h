#pragma once
// inotify for the posture monitor: directory watches and their events, without <sys/inotify.h>
// in the callers.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

#include "platform/base/error.h"
#include "platform/os/unique_fd.h"

namespace warden::os {

/// What a watch reports (each adds IN_ONLYDIR and IN_MASK_ADD, so a directory watched twice keeps
/// both kinds).
enum class WatchKind {
  kSubdirs,  ///< entries created, deleted or moved in or out (cgroupfs: container scopes)
  kFiles,    ///< also files closed after writing (config and policy files)
  kTree,     ///< kFiles plus the watched directory itself deleted or moved (the state dir)
};

/// One inotify event, decoded. `name` is valid only during the callback.
struct FsEvent {
  int watch = -1;  ///< the id add() returned
  std::string_view name;
  bool is_dir = false;
  bool created = false;    ///< IN_CREATE
  bool moved_in = false;   ///< IN_MOVED_TO
  bool deleted = false;    ///< IN_DELETE
  bool moved_out = false;  ///< IN_MOVED_FROM
  bool self_gone = false;  ///< IN_DELETE_SELF or IN_MOVE_SELF
  bool ignored = false;    ///< IN_IGNORED: the watch is gone
  bool overflow = false;   ///< IN_Q_OVERFLOW: events were lost, rescan
  [[nodiscard]] bool added() const { return created || moved_in; }
  [[nodiscard]] bool removed() const { return deleted || moved_out; }
};

/// A non-blocking inotify instance. Not thread-safe: one owner thread.
class Inotify {
 public:
  static Result<Inotify> create();
  /// Watches `dir`; the same directory added twice returns the same id. kNotFound when `dir` is
  /// gone (removed before we got to it), kIo otherwise.
  Result<int> add(const std::filesystem::path& dir, WatchKind kind);
  /// Reads every queued event and hands each to `on_event`; returns the number read.
  std::size_t drain(const std::function<void(const FsEvent&)>& on_event);
  /// For EventLoop::add_readable.
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit Inotify(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace warden::os
