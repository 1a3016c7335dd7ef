#include "agent/posture/tpm_source.h"

namespace warden::agent::posture {
namespace {

bool same_reading(const TpmProbe::Reading& a, const TpmProbe::Reading& b) {
  return a.reset_count == b.reset_count && a.restart_count == b.restart_count && a.pcrs == b.pcrs;
}

}  // namespace

Status TpmSource::start() {
  auto reading = probe_.read();
  if (!reading) return fail(reading.error().context("posture: TPM baseline"));
  pcrs_.rebaseline(*reading);
  resets_.rebaseline(*reading);
  return ok();
}

void TpmSource::poll() {
  const auto detected = now_();
  if (!ok_ && detected < retry_at_) return;
  ++counters_.tpm_polls;
  auto reading = probe_.read();
  if (!reading) {
    ++counters_.tpm_errors;
    retry_at_ = now_() + kRetryInterval;
    if (ok_) {
      ok_ = false;
      observer_.observe({Trigger::kTpmLost, "tpm", "reachable",
                         "unreachable: " + reading.error().message, std::nullopt, std::nullopt, "",
                         detected});
    }
    return;
  }
  if (!ok_) {
    ok_ = true;
    observer_.observe({Trigger::kTpmBack, "tpm", "unreachable", "reachable", std::nullopt,
                       std::nullopt, "", detected});
  }
  // What is reported depends on the reading, the reference and the container log, and the last
  // two only move with the reading (an append extends the container PCR; rebaseline() resets
  // last_): a reading equal to the last one has nothing new.
  if (last_ && same_reading(*last_, *reading)) return;
  last_ = *reading;
  resets_.check(*reading, detected);
  pcrs_.check(reading->pcrs, detected);
}

void TpmSource::rebaseline() {
  last_.reset();
  if (auto reading = probe_.read(); reading) {
    pcrs_.rebaseline(*reading);
    resets_.rebaseline(*reading);
    ok_ = true;
  } else {
    pcrs_.forget_reports();
    resets_.forget_reports();
  }
}

}  // namespace warden::agent::posture
