#include "agent/posture/ima_source.h"

#include "platform/base/log.h"
#include "platform/os/securityfs.h"

namespace warden::agent::posture {

Result<std::uint64_t> SecurityfsImaCounter::read() {
  auto count = os::read_ima_count(root_);
  if (!count) return fail(std::move(count).error().context("posture"));
  return count;
}

Status ImaSource::start() {
  auto count = counter_.read();
  if (!count) return fail(std::move(count).error());
  reference_ = *count;
  return ok();
}

void ImaSource::poll() {
  ++counters_.ima_polls;
  const auto detected = now_();
  auto count = counter_.read();
  if (!count) {
    spdlog::debug("{}", count.error().message);
    return;
  }
  const auto reference = std::to_string(reference_);
  const auto current = std::to_string(*count);
  if (is_new(reported_, "count", reference, current)) {
    observer_.observe({Trigger::kImaCountGrew, "ima runtime_measurements_count", reference, current,
                       std::nullopt, std::nullopt, "", detected});
  }
}

void ImaSource::rebaseline() {
  if (auto count = counter_.read(); count) reference_ = *count;
  reported_.clear();
}

}  // namespace warden::agent::posture
