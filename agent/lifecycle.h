#pragma once

#include <optional>
#include <string_view>

#include "platform/base/error.h"

namespace warden::agent {

/// The agent's lifecycle. Transitions are explicit; anything not listed in allowed() is a bug
/// in the caller and is refused.
enum class AgentState {
  kStarting,     ///< opening the TPM and state directory
  kEnrolling,    ///< registering EK and AK with the issuer (first start or after a TPM clear)
  kAttesting,    ///< first attestation after start
  kServing,      ///< tokens and proofs are served
  kReattesting,  ///< serving paused or limited while a posture change is re-appraised
  kRevoked,      ///< credentials withdrawn; waits for a good re-attestation
  kDegraded,     ///< issuer or TPM unreachable; serves nothing expired, retries with backoff
};

std::string_view to_string(AgentState state);
std::optional<AgentState> state_from_string(std::string_view name);

/// True when `from` -> `to` is a legal transition.
bool allowed(AgentState from, AgentState to);

/// Holds the current state and applies only legal transitions.
class Lifecycle {
 public:
  [[nodiscard]] AgentState state() const { return state_; }
  /// Moves to `to`, or returns kInvalidArgument naming both states.
  Status transition(AgentState to);
  /// Tokens and proofs may be handed out only in kServing.
  [[nodiscard]] bool serving() const { return state_ == AgentState::kServing; }

 private:
  AgentState state_ = AgentState::kStarting;
};

}  // namespace warden::agent
