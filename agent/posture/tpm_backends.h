#pragma once
// The posture monitor's TPM interfaces on warden::tpm::Tpm. Both run on the monitor thread; when
// the daemon uses the same TPM from another thread (swtpm serves one connection at a time), it
// passes the mutex its own TPM calls hold so that connections never overlap.

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
  TpmStateProbe(const tpm::Tpm& tpm, PcrSelection selection, std::mutex* tpm_mutex = nullptr)
      : poller_(tpm.tcti(), std::move(selection)), tpm_mutex_(tpm_mutex) {}
  Result<Reading> read() override;
  /// Commands, full reads and connections so far; callable from any thread.
  [[nodiscard]] tpm::StatePoller::Stats stats() const;

 private:
  tpm::StatePoller poller_;
  std::mutex* tpm_mutex_;
  mutable std::mutex stats_mutex_;  ///< guards stats_
  tpm::StatePoller::Stats stats_;   ///< poller_.stats() after the last read
};

/// TPM2_PCR_Extend / TPM2_PCR_Read for the Container Event Log.
class TpmPcrExtender final : public PcrExtender {
 public:
  explicit TpmPcrExtender(tpm::Tpm tpm, std::mutex* tpm_mutex = nullptr)
      : tpm_(std::move(tpm)), tpm_mutex_(tpm_mutex) {}
  Status extend(unsigned pcr, TpmAlg alg, ByteSpan digest) override;
  Result<Bytes> read(unsigned pcr, TpmAlg alg) override;

 private:
  tpm::Tpm tpm_;
  std::mutex* tpm_mutex_;
};

/// "sha256:7", the key of a PCR in TpmProbe::Reading::pcrs.
std::string pcr_key(TpmAlg alg, unsigned index);

}  // namespace warden::agent::posture
