#pragma once
// Posture monitoring: watches the device and classifies every change into an action
// (docs/architecture.md, "Posture monitoring"). The monitor only observes and classifies; the
// daemon applies the action (revoke tokens, wipe keys, re-attest, report to the issuer).

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

enum class Action {
  kRevokeWorkload,  ///< revoke the tokens of one workload (container id in Change::workload)
  kReattest,        ///< incremental re-attestation; the issuer decides
  kRevokeAll,       ///< revoke everything, zero secrets, then full re-attestation with backoff
  kNone,            ///< informational (e.g. a container started)
};

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
  std::chrono::steady_clock::time_point detected_at;
};

/// Reads what the poll-based sources need from the TPM. Implemented by the daemon on
/// platform/tpm (opened per call, as swtpm serves one connection at a time); tests may pass
/// one that reads a per-test swtpm.
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

struct MonitorOptions {
  std::filesystem::path cgroupfs_root;    ///< config posture.cgroupfs_root
  std::filesystem::path securityfs_root;  ///< reads <root>/ima/runtime_measurements_count
  std::chrono::milliseconds pcr_poll_interval{1000};
  std::chrono::milliseconds ima_poll_interval{1000};
  std::vector<std::filesystem::path> watched_files;  ///< config and policy files
  std::filesystem::path state_dir;                   ///< sealed blobs and state files
  TpmProbe* tpm = nullptr;                           ///< null: no PCR/reset/TPM sources
};

/// Runs the sources on its own thread (inotify + timers); calls `on_change` from that thread for
/// each classified change, in order. Changes caused by the agent itself (its own state-file
/// writes) are suppressed through expect_state_write().
class Monitor {
 public:
  using Callback = std::function<void(const Change&)>;
  static Result<std::unique_ptr<Monitor>> start(MonitorOptions options, Callback on_change);
  virtual ~Monitor() = default;  ///< stops the thread
  /// The agent is about to write `path` itself: do not report it as tampering.
  virtual void expect_state_write(const std::filesystem::path& path) = 0;
  /// The agent re-baselined (after a good attestation): current PCRs/counters become the
  /// reference against which the next change is detected.
  virtual void rebaseline() = 0;
};

}  // namespace warden::agent::posture
