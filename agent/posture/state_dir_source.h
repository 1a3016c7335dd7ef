#pragma once
// Source::kStateFile: sealed blobs and state files modified or removed behind the agent's back
// (the state dir and its subdirectories, two levels deep). The agent's own writes, announced
// through OwnWrites, move the reference instead.

#include <filesystem>
#include <map>
#include <string>

#include "agent/posture/own_writes.h"
#include "agent/posture/source.h"

namespace warden::agent::posture {

class StateDirSource {
 public:
  static constexpr unsigned kDepth = 2;

  StateDirSource(std::filesystem::path state_dir, DirWatcher& watcher, OwnWrites& own_writes,
                 Observer& observer, Counters& counters, NowFn now)
      : dir_(state_dir.lexically_normal()),
        watcher_(watcher),
        own_writes_(own_writes),
        observer_(observer),
        counters_(counters),
        now_(std::move(now)) {}
  /// Watches the state dir itself. Errors: it cannot be watched.
  Status start();
  /// Every file's current digest becomes the reference (and subdirectories are watched).
  void rebaseline();
  void on_event(const os::FsEvent& event);
  /// Checks every known and every present file (after an inotify overflow).
  void rescan();

 private:
  void scan(const std::string& rel, bool take_reference);
  void watch_subdir(const std::string& rel);
  void check(const std::string& rel);

  std::filesystem::path dir_;
  DirWatcher& watcher_;
  OwnWrites& own_writes_;
  Observer& observer_;
  Counters& counters_;
  NowFn now_;
  std::map<int, std::string> watches_;  ///< watch id -> rel ("" for the state dir)
  std::map<std::string, std::string> reference_;
  std::map<std::string, std::string> reported_;
};

}  // namespace warden::agent::posture
