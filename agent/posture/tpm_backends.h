#pragma once
// The posture monitor's TPM interfaces on warden::tpm::Tpm. Both run on the monitor thread; the
// daemon hands them a copy of the agent's Tpm, so they share its one connection and TPM lock (and
// never the agent's state lock, which may wait on the issuer).

#include <mutex>

#include "agent/posture/container_log.h"
#include "agent/posture/posture.h"
#include "platform/base/pcr_selection.h"
#include "platform/tpm/state_poller.h"
#include "platform/tpm/tpm.h"

namespace warden::agent::posture {

/// PCR values of `selection` ("sha256:7" -> hex) and resetCount/restartCount, read by a
/// tpm::StatePoller: ReadClock and one PCR_Read per poll while the TPM's pcrUpdateCounter stands
/// still, over a connection kept open where the TCTI allows it.
class TpmStateProbe final : public TpmProbe {
 public:
  TpmStateProbe(const tpm::Tpm& tpm, PcrSelection selection) : poller_(tpm, std::move(selection)) {}
  Result<Reading> read() override;
  /// Commands, full reads and connections so far; callable from any thread.
  [[nodiscard]] tpm::StatePoller::Stats stats() const;

 private:
  tpm::StatePoller poller_;
  mutable std::mutex stats_mutex_;  ///< guards stats_
  tpm::StatePoller::Stats stats_;   ///< poller_.stats() after the last read
};

/// TPM2_PCR_Extend / TPM2_PCR_Read for the Container Event Log.
class TpmPcrExtender final : public PcrExtender {
 public:
  explicit TpmPcrExtender(tpm::Tpm tpm) : tpm_(std::move(tpm)) {}
  Status extend(unsigned pcr, TpmAlg alg, ByteSpan digest) override;
  Result<Bytes> read(unsigned pcr, TpmAlg alg) override;

 private:
  tpm::Tpm tpm_;
};

/// "sha256:7", the key of a PCR in TpmProbe::Reading::pcrs.
std::string pcr_key(TpmAlg alg, unsigned index);

}  // namespace warden::agent::posture
