#pragma once
// Source::kTpm (the TPM lost or back) and the TPM reading that feeds the PCR and reset-count
// sources: one TpmProbe read per poll.

#include <chrono>
#include <optional>

#include "agent/posture/pcr_source.h"
#include "agent/posture/posture.h"
#include "agent/posture/reset_count_source.h"
#include "agent/posture/source.h"

namespace warden::agent::posture {

class TpmSource {
 public:
  /// A lost TPM is retried once per `retry_interval`, not every poll: tpm2-tss logs every failed
  /// connect.
  static constexpr std::chrono::seconds kRetryInterval{1};

  TpmSource(TpmProbe& probe, Observer& observer, Counters& counters, NowFn now, unsigned ima_pcr,
            const ContainerEventLog* container_log)
      : probe_(probe),
        observer_(observer),
        counters_(counters),
        now_(std::move(now)),
        pcrs_(observer, ima_pcr, container_log),
        resets_(observer) {}
  /// Takes the first reference. Errors: the TPM is unreachable.
  Status start();
  /// Reads the TPM; reports its loss or return, then the counters, then the PCRs.
  void poll();
  /// A reading now becomes the reference (kept when the TPM is unreachable); reports are
  /// forgotten either way.
  void rebaseline();

 private:
  TpmProbe& probe_;
  Observer& observer_;
  Counters& counters_;
  NowFn now_;
  PcrSource pcrs_;
  ResetCountSource resets_;
  bool ok_ = true;
  SteadyTime retry_at_;
  std::optional<TpmProbe::Reading> last_;  ///< of the last poll that read the TPM
};

}  // namespace warden::agent::posture
