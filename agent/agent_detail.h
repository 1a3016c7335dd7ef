#pragma once
// Internal to the agent's sources (agent*.cpp): what more than one of them needs.

#include <string>

#include "agent/agent.h"

namespace warden::agent::detail {

inline bool issuer_unreachable(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kTimeout ||
         e.code == ErrorCode::kIo;
}

}  // namespace warden::agent::detail
