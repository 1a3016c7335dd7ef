#pragma once
// Source::kConfig and Source::kPolicy: the agent config and the policy files, watched through
// their parent directories (editors replace files by renaming).

#include <filesystem>
#include <map>
#include <string>

#include "agent/posture/source.h"

namespace warden::agent::posture {

class WatchedFiles {
 public:
  WatchedFiles(DirWatcher& watcher, Observer& observer, NowFn now)
      : watcher_(watcher), observer_(observer), now_(std::move(now)) {}
  /// Watches the parent of `path`; a change of `path` reports `trigger` (kConfigChanged or
  /// kPolicyFileChanged). Errors: the parent cannot be watched.
  Status add(const std::filesystem::path& path, Trigger trigger);
  /// Current digests become the reference.
  void rebaseline();
  void on_event(const os::FsEvent& event);
  /// Checks every file (after an inotify overflow).
  void rescan();

 private:
  void check(const std::filesystem::path& path);

  struct File {
    Trigger trigger = Trigger::kPolicyFileChanged;
    std::string reference;
    std::string reported;
  };
  DirWatcher& watcher_;
  Observer& observer_;
  NowFn now_;
  std::map<int, std::filesystem::path> dirs_;  ///< watch id -> directory
  std::map<std::filesystem::path, File> files_;
};

}  // namespace warden::agent::posture
