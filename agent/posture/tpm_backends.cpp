#include "agent/posture/tpm_backends.h"

#include "platform/base/encoding.h"

namespace warden::agent::posture {

std::string pcr_key(TpmAlg alg, unsigned index) {
  return std::string(hash_name(alg)) + ":" + std::to_string(index);
}

Result<TpmProbe::Reading> TpmStateProbe::read() {
  auto snapshot = poller_.read();
  {
    std::lock_guard stats_lock(stats_mutex_);
    stats_ = poller_.stats();
  }
  if (!snapshot) return fail(std::move(snapshot).error());
  Reading reading;
  for (const auto& pcr : snapshot->pcrs) {
    reading.pcrs[pcr_key(pcr.alg, pcr.index)] = hex_encode(pcr.digest);
  }
  reading.reset_count = snapshot->clock.reset_count;
  reading.restart_count = snapshot->clock.restart_count;
  return reading;
}

tpm::StatePoller::Stats TpmStateProbe::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

Status TpmPcrExtender::extend(unsigned pcr, TpmAlg alg, ByteSpan digest) {
  return tpm_.extend_pcr(pcr, alg, digest);
}

Result<Bytes> TpmPcrExtender::read(unsigned pcr, TpmAlg alg) {
  PcrSelection selection;
  PcrBank bank{alg, {}};
  bank.pcrs.set(pcr);
  selection.banks.push_back(bank);
  auto values = tpm_.read_pcrs(selection);
  if (!values) return fail(std::move(values).error());
  if (values->size() != 1) {
    return fail(ErrorCode::kTpm, "read PCR " + pcr_key(alg, pcr) + ": expected 1 value, got " +
                                     std::to_string(values->size()));
  }
  return std::move(values->front().digest);
}

}  // namespace warden::agent::posture
