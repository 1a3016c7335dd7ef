#pragma once
// Source::kContainer: container scopes appearing and disappearing under cgroupfs (inotify on
// every directory above a container scope), each start and stop measured into the Container
// Event Log.

#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "agent/posture/own_writes.h"
#include "agent/posture/posture.h"
#include "agent/posture/source.h"
#include "attest/cel/cel.h"
#include "platform/os/cgroup_path.h"

namespace warden::agent::posture {

class ContainerSource {
 public:
  struct Options {
    std::filesystem::path cgroupfs_root;
    ContainerEventLog* container_log = nullptr;  ///< null: reported, not measured
    ImageLookup image_lookup;
    std::size_t max_watches = 8192;
    unsigned max_depth = 12;
    /// `ctr run` containers ("/<namespace>/<id>") count only when containerd records the task
    /// here (os::containerd_task_exists); empty: they are not looked for.
    std::filesystem::path containerd_state;
  };
  ContainerSource(Options options, DirWatcher& watcher, OwnWrites& own_writes, Observer& observer,
                  Counters& counters, NowFn now)
      : opts_(std::move(options)),
        watcher_(watcher),
        own_writes_(own_writes),
        observer_(observer),
        counters_(counters),
        now_(std::move(now)) {}

  /// Watches the root, scans it, and reports the containers found as starts (those the log
  /// already lists as running are not reported again), then the containers the log lists as
  /// running that are gone as stops. Errors: the root cannot be watched.
  Status start();
  /// An event of a watch this source asked for (others are ignored).
  void on_event(const os::FsEvent& event);
  /// After an inotify overflow: what appeared or disappeared meanwhile.
  void rescan();

 private:
  /// `rel` is relative to the cgroupfs root (on cgroup v1 it starts with the hierarchy).
  [[nodiscard]] std::filesystem::path dir_of(const std::string& rel) const;
  /// The path /proc/PID/cgroup shows (cgroup v1: without the hierarchy), recorded in the CEL.
  [[nodiscard]] std::string cel_path(const std::string& rel) const;
  [[nodiscard]] std::string rel_of(const std::string& cel_cgroup_path) const;
  void scan(const std::string& rel, std::set<std::string>* seen);
  void dir_added(const std::string& rel, std::set<std::string>* seen);
  void dir_removed(const std::string& rel);
  void appeared(const std::string& rel, const os::ContainerScope& scope);
  void gone(const std::string& rel);
  void measure(const attest::cel::ContainerContent& content);

  Options opts_;
  DirWatcher& watcher_;
  OwnWrites& own_writes_;
  Observer& observer_;
  Counters& counters_;
  NowFn now_;
  std::filesystem::path root_;
  std::string prefix_;                  ///< cgroup v1: the one controller hierarchy watched
  std::map<int, std::string> watches_;  ///< watch id -> rel
  std::map<std::string, std::string> id_by_rel_;
  std::map<std::string, std::set<std::string>> rels_by_id_;
  std::map<std::string, attest::cel::ContainerContent> started_;
  bool starting_ = false;  ///< within start(): the scan of what ran before the agent
  bool limit_logged_ = false;
};

}  // namespace warden::agent::posture
