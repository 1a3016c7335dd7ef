#pragma once
// Posture monitoring: watches the device and classifies every change into an action
// (docs/architecture.md, "Posture monitoring"). The monitor only observes and classifies; the
// daemon applies the action (revoke tokens, wipe keys, re-attest, report to the issuer).

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "platform/base/error.h"

namespace warden::agent::posture {

class ContainerEventLog;

enum class Source {
  kContainer,   ///< a container scope appeared or disappeared under cgroupfs
  kIma,         ///< the IMA measurement count grew
  kPcr,         ///< a quoted PCR changed
  kResetCount,  ///< the TPM's resetCount/restartCount changed (reboot, TPM restart)
  kConfig,      ///< the agent config file changed
  kPolicy,      ///< a policy file changed
  kStateFile,   ///< a sealed blob or state file was modified or removed behind our back
  kStatusList,  ///< the issuer's status list marks one of our tokens revoked
  kTpm,         ///< the TPM became unreachable (or reachable again)
};
inline constexpr std::size_t kSourceCount = 9;

enum class Action {
  kRevokeWorkload,  ///< revoke the tokens of one workload (container id in Change::workload)
  kReattest,        ///< incremental re-attestation; the issuer decides
  kRevokeAll,       ///< revoke everything, zero secrets, then full re-attestation with backoff
  kNone,            ///< informational (e.g. a container started)
};
inline constexpr std::size_t kActionCount = 4;

std::string_view to_string(Source source);
std::string_view to_string(Action action);

struct Change {
  Source source = Source::kPcr;
  Action action = Action::kNone;
  std::string subject;    ///< what changed: "pcr sha256:7", a container id, a file path, ...
  std::string old_value;  ///< hex digest, count, "present", ...
  std::string new_value;
  std::optional<std::string> workload;  ///< container id for kRevokeWorkload
  std::optional<std::string> runtime;   ///< docker, containerd, cri-o, podman, kubepods
  std::string cgroup_path;              ///< for container changes, relative to cgroupfs root
  std::chrono::steady_clock::time_point detected_at;  ///< when the monitor saw it
};

/// Counters for the agent's metrics; monotonic since start().
struct MonitorStats {
  std::array<std::uint64_t, kSourceCount> changes_by_source{};  ///< indexed by Source
  std::array<std::uint64_t, kActionCount> changes_by_action{};  ///< indexed by Action
  std::uint64_t tpm_polls = 0;
  std::uint64_t tpm_errors = 0;
  std::uint64_t ima_polls = 0;
  std::uint64_t inotify_events = 0;
  std::uint64_t overflows = 0;       ///< inotify queue overflows (each forces a rescan)
  std::uint64_t cgroup_watches = 0;  ///< directories watched under cgroupfs now
  std::uint64_t cgroup_watch_limit_hits = 0;
  std::uint64_t containers_running = 0;  ///< container scopes present now
  std::uint64_t container_log_appends = 0;
  std::uint64_t container_log_errors = 0;
  std::uint64_t suppressed_own_writes = 0;  ///< state-dir events announced by expect_state_write
};

/// Reads what the poll-based sources need from the TPM. The daemon's is TpmStateProbe
/// (tpm_backends.h, on tpm::StatePoller); tests may pass one that reads a per-test swtpm.
class TpmProbe {
 public:
  virtual ~TpmProbe() = default;
  /// Current values of the quoted PCRs as "alg:index" -> hex digest, plus resetCount and
  /// restartCount; an error when the TPM is unreachable.
  struct Reading {
    std::map<std::string, std::string> pcrs;
    std::uint64_t reset_count = 0;
    std::uint64_t restart_count = 0;
  };
  virtual Result<Reading> read() = 0;
};

/// What a container runtime records about a container's image (where it exposes it).
struct ImageInfo {
  std::string reference;  ///< e.g. "docker.io/library/nginx:1.25"
  std::string digest;     ///< e.g. "sha256:<64 hex>"
};
/// Looks up the image of container `id` run by `runtime` ("docker", "podman", ...); nullopt when
/// the runtime does not say. Runs on the monitor thread. docker_image_lookup() (image_lookup.h)
/// is one.
using ImageLookup =
    std::function<std::optional<ImageInfo>(std::string_view runtime, std::string_view id)>;

/// Empty paths switch a source off.
struct MonitorOptions {
  std::filesystem::path cgroupfs_root;    ///< config posture.cgroupfs_root
  std::filesystem::path securityfs_root;  ///< reads <root>/ima/runtime_measurements_count
  std::chrono::milliseconds pcr_poll_interval{1000};  ///< also resetCount/restartCount, TPM loss
  std::chrono::milliseconds ima_poll_interval{1000};
  std::filesystem::path config_file;                 ///< the agent config (Source::kConfig)
  std::vector<std::filesystem::path> watched_files;  ///< policy files (Source::kPolicy)
  std::filesystem::path state_dir;                   ///< sealed blobs and state files
  TpmProbe* tpm = nullptr;                           ///< null: no PCR/reset/TPM sources
  /// The IMA PCR: it grows with every IMA measurement, so its changes ask for re-attestation
  /// (kReattest) where every other PCR's change revokes all. The container PCR is ignored when
  /// the container log is set (container events report it).
  unsigned ima_pcr = 10;
  /// Null: container events are reported but not measured. Otherwise every start/stop is
  /// appended (and extended into the container PCR) before the callback runs.
  ContainerEventLog* container_log = nullptr;
  ImageLookup image_lookup;               ///< null: container records carry no image
  std::size_t max_cgroup_watches = 8192;  ///< directories watched under cgroupfs, at most
  unsigned max_cgroup_depth = 12;
  std::filesystem::path containerd_state;  ///< config posture.containerd_state
};

/// Runs the sources on its own thread (one epoll over inotify + timerfds); calls `on_change` from
/// that thread for each classified change, in order (it must not throw and should only hand the
/// change over). Changes caused by the agent itself (its own state-file writes) are suppressed
/// through expect_state_write(). A change is reported once per new value: `old_value` is the
/// reference (the value at start() or the last rebaseline()), `new_value` the value now.
class Monitor {
 public:
  using Callback = std::function<void(const Change&)>;
  /// Takes the reference (reads the TPM probe, the IMA count, the files) and scans cgroupfs on
  /// the calling thread, then starts the thread. Containers already running are reported (and
  /// logged) as starts when the container log does not already list them. Errors: an
  /// unreachable TPM, unreadable roots, no inotify.
  static Result<std::unique_ptr<Monitor>> start(MonitorOptions options, Callback on_change);
  virtual ~Monitor() = default;  ///< stops the thread
  /// The agent is about to write (or remove) `path` itself: the next change of it is taken as
  /// the new reference instead of tampering. Call once per write; expires after 30 s.
  virtual void expect_state_write(const std::filesystem::path& path) = 0;
  /// The agent re-baselined (after a good attestation): current PCRs/counters/file digests become
  /// the reference against which the next change is detected. Blocks until the monitor thread
  /// has read them (one TPM read); callable from the callback. Do not call it while holding a
  /// lock the TpmProbe takes.
  virtual void rebaseline() = 0;
  [[nodiscard]] virtual MonitorStats stats() const = 0;
};

}  // namespace warden::agent::posture
