#pragma once
// What the posture sources share: where they send observations, the counters they keep, the
// clock, and the directory watches they ask for. Internal to agent/posture.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "agent/posture/policy.h"
#include "agent/posture/posture.h"
#include "platform/base/error.h"
#include "platform/os/inotify.h"

namespace warden::agent::posture {

using SteadyTime = std::chrono::steady_clock::time_point;
/// The steady clock, injected so that tests control retry intervals and expiries.
using NowFn = std::function<SteadyTime()>;

/// Receives each observation, in order, on the thread that made it.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void observe(Observation observation) = 0;
};

/// Directory watches (inotify in the daemon; a fake in unit tests). Events come back to the
/// source that asked, as os::FsEvent with the id returned here.
class DirWatcher {
 public:
  virtual ~DirWatcher() = default;
  /// The same directory twice yields the same id. kNotFound when `dir` is gone.
  virtual Result<int> watch(const std::filesystem::path& dir, os::WatchKind kind) = 0;
};

/// MonitorStats, written by the monitor thread and read by any.
struct Counters {
  std::array<std::atomic<std::uint64_t>, kSourceCount> by_source{};
  std::array<std::atomic<std::uint64_t>, kActionCount> by_action{};
  std::atomic<std::uint64_t> tpm_polls{0}, tpm_errors{0}, ima_polls{0}, inotify_events{0},
      overflows{0}, cgroup_watches{0}, cgroup_watch_limit_hits{0}, containers_running{0},
      container_log_appends{0}, container_log_errors{0}, suppressed_own_writes{0};
  [[nodiscard]] MonitorStats snapshot() const;
};

inline constexpr const char* kAbsent = "absent";

/// "absent", or the file's sha256 in hex, or "unreadable: <why>".
std::string file_state(const std::filesystem::path& path);

/// "a/b" from "a" and "b"; "b" from "" and "b".
std::string join(const std::string& parent, std::string_view name);
/// Number of components of a relative path ("" has none).
unsigned depth_of(const std::string& rel);

/// True when `current` differs from `reference` and was not reported before (remembered in
/// `reported[key]`); a value back at the reference forgets the report.
bool is_new(std::map<std::string, std::string>& reported, const std::string& key,
            const std::string& reference, const std::string& current);

}  // namespace warden::agent::posture
