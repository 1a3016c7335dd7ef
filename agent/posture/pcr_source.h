#pragma once
// Source::kPcr: a quoted PCR moved from its reference, or the container PCR left the container
// log's replay.

#include <map>
#include <string>

#include "agent/posture/posture.h"
#include "agent/posture/source.h"

namespace warden::agent::posture {

class PcrSource {
 public:
  /// `ima_pcr` moves report kImaPcrChanged; with a container log, the container PCR is held to
  /// the log's replay instead of the reference.
  PcrSource(Observer& observer, unsigned ima_pcr, const ContainerEventLog* container_log)
      : observer_(observer), ima_pcr_(ima_pcr), container_log_(container_log) {}
  /// The PCRs of `reading` become the reference; reports are forgotten.
  void rebaseline(const TpmProbe::Reading& reading);
  /// Reports are forgotten, the reference kept (the TPM was unreadable at a rebaseline).
  void forget_reports() { reported_.clear(); }
  /// Reports each PCR of `pcrs` (or of the reference) whose value is new.
  void check(const std::map<std::string, std::string>& pcrs, SteadyTime detected);

 private:
  Observer& observer_;
  unsigned ima_pcr_;
  const ContainerEventLog* container_log_;
  std::map<std::string, std::string> reference_;
  std::map<std::string, std::string> reported_;
};

}  // namespace warden::agent::posture
