#include "agent/posture/reset_count_source.h"

#include <utility>

namespace warden::agent::posture {

void ResetCountSource::rebaseline(const TpmProbe::Reading& reading) {
  reset_reference_ = reading.reset_count;
  restart_reference_ = reading.restart_count;
  reported_.clear();
}

void ResetCountSource::check(const TpmProbe::Reading& reading, SteadyTime detected) {
  const std::pair<const char*, std::pair<std::uint64_t, std::uint64_t>> counters[] = {
      {"resetCount", {reset_reference_, reading.reset_count}},
      {"restartCount", {restart_reference_, reading.restart_count}}};
  for (const auto& [name, values] : counters) {
    const auto reference = std::to_string(values.first);
    const auto current = std::to_string(values.second);
    if (is_new(reported_, name, reference, current)) {
      observer_.observe({Trigger::kResetCountChanged, name, reference, current, std::nullopt,
                         std::nullopt, "", detected});
    }
  }
}

}  // namespace warden::agent::posture
