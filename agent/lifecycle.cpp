#include "agent/lifecycle.h"

#include <array>

#include <fmt/format.h>

namespace warden::agent {
namespace {
constexpr std::array kNames = {
    std::pair{AgentState::kStarting, "starting"},
    std::pair{AgentState::kEnrolling, "enrolling"},
    std::pair{AgentState::kAttesting, "attesting"},
    std::pair{AgentState::kServing, "serving"},
    std::pair{AgentState::kReattesting, "reattesting"},
    std::pair{AgentState::kRevoked, "revoked"},
    std::pair{AgentState::kDegraded, "degraded"},
};
}  // namespace

std::string_view to_string(AgentState state) {
  for (auto [s, name] : kNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<AgentState> state_from_string(std::string_view name) {
  for (auto [s, n] : kNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

bool allowed(AgentState from, AgentState to) {
  using S = AgentState;
  if (from == to) return false;
  // Any state may fall into degraded (TPM or issuer lost) or revoked (posture change).
  if (to == S::kDegraded || to == S::kRevoked) return from != S::kStarting || to == S::kDegraded;
  switch (from) {
    case S::kStarting:
      return to == S::kEnrolling || to == S::kAttesting;
    case S::kEnrolling:
      return to == S::kAttesting;
    case S::kAttesting:
      return to == S::kServing || to == S::kEnrolling;
    case S::kServing:
      return to == S::kReattesting;
    case S::kReattesting:
      return to == S::kServing || to == S::kEnrolling;
    case S::kRevoked:
      return to == S::kReattesting || to == S::kEnrolling;
    case S::kDegraded:
      return to == S::kAttesting || to == S::kReattesting || to == S::kEnrolling;
  }
  return false;
}

Status Lifecycle::transition(AgentState to) {
  if (!allowed(state_, to)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("lifecycle: transition {} -> {} is not allowed", to_string(state_),
                            to_string(to)));
  }
  state_ = to;
  return ok();
}

}  // namespace warden::agent
