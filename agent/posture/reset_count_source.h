#pragma once
// Source::kResetCount: the TPM's resetCount or restartCount moved (reboot, TPM restart).

#include <cstdint>
#include <map>
#include <string>

#include "agent/posture/posture.h"
#include "agent/posture/source.h"

namespace warden::agent::posture {

class ResetCountSource {
 public:
  explicit ResetCountSource(Observer& observer) : observer_(observer) {}
  /// The counters of `reading` become the reference; reports are forgotten.
  void rebaseline(const TpmProbe::Reading& reading);
  /// Reports are forgotten, the reference kept (the TPM was unreadable at a rebaseline).
  void forget_reports() { reported_.clear(); }
  /// Reports resetCount and restartCount when new.
  void check(const TpmProbe::Reading& reading, SteadyTime detected);

 private:
  Observer& observer_;
  std::uint64_t reset_reference_ = 0;
  std::uint64_t restart_reference_ = 0;
  std::map<std::string, std::string> reported_;
};

}  // namespace warden::agent::posture
