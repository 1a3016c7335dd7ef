#pragma once
// The change-to-action policy: which observation leads to which action, as one table.

#include <array>
#include <string_view>

#include "agent/posture/posture.h"

namespace warden::agent::posture {

/// What a source saw. Each has exactly one row in kPolicy.
enum class Trigger {
  kContainerStarted,
  kContainerStopped,
  kImaCountGrew,
  kImaPcrChanged,            ///< the IMA PCR moved (every measurement extends it)
  kPcrChanged,               ///< any other quoted PCR moved
  kContainerPcrUnexplained,  ///< the container PCR differs from the container log's replay
  kResetCountChanged,        ///< resetCount or restartCount: a reboot or TPM restart
  kConfigChanged,
  kPolicyFileChanged,
  kStateFileChanged,  ///< modified or removed behind the agent's back
  kStateDirGone,
  kTpmLost,
  kTpmBack,
};
inline constexpr std::size_t kTriggerCount = 13;

struct PolicyRow {
  Trigger trigger;
  Source source;
  Action action;
  std::string_view why;
};

/// docs/posture.md and docs/architecture.md ("Posture monitoring") explain each row.
inline constexpr std::array<PolicyRow, kTriggerCount> kPolicy{{
    {Trigger::kContainerStarted, Source::kContainer, Action::kNone,
     "informational: tokens are issued to the new instance on request"},
    {Trigger::kContainerStopped, Source::kContainer, Action::kRevokeWorkload,
     "the workload's tokens must not outlive it"},
    {Trigger::kImaCountGrew, Source::kIma, Action::kReattest,
     "new measurements: the issuer appraises them"},
    {Trigger::kImaPcrChanged, Source::kPcr, Action::kReattest,
     "the IMA PCR grows with every measurement"},
    {Trigger::kPcrChanged, Source::kPcr, Action::kRevokeAll,
     "boot state changed under a running agent"},
    {Trigger::kContainerPcrUnexplained, Source::kPcr, Action::kRevokeAll,
     "an extend the container log does not explain is tampering"},
    {Trigger::kResetCountChanged, Source::kResetCount, Action::kRevokeAll,
     "reboot or TPM restart: everything quoted before is stale"},
    {Trigger::kConfigChanged, Source::kConfig, Action::kReattest, "policy drift"},
    {Trigger::kPolicyFileChanged, Source::kPolicy, Action::kReattest, "policy drift"},
    {Trigger::kStateFileChanged, Source::kStateFile, Action::kRevokeAll,
     "a tampered sealed blob or state file is a secret leak signal"},
    {Trigger::kStateDirGone, Source::kStateFile, Action::kRevokeAll,
     "the state dir was removed or moved behind the agent's back"},
    {Trigger::kTpmLost, Source::kTpm, Action::kRevokeAll, "nothing can be proven without the TPM"},
    {Trigger::kTpmBack, Source::kTpm, Action::kReattest, "prove the state again"},
}};

/// The row of `trigger`.
const PolicyRow& policy_for(Trigger trigger);

/// What a source reports: a trigger and the values, without source and action (the table's).
struct Observation {
  Trigger trigger = Trigger::kPcrChanged;
  std::string subject;
  std::string old_value;
  std::string new_value;
  std::optional<std::string> workload;
  std::optional<std::string> runtime;
  std::string cgroup_path;
  std::chrono::steady_clock::time_point detected_at;
};

/// The change `observation` is, classified by kPolicy.
Change classify(Observation observation);

}  // namespace warden::agent::posture
