#include "agent/posture/pcr_source.h"

#include <charconv>
#include <set>

#include "agent/posture/container_log.h"
#include "platform/base/pcr_selection.h"

namespace warden::agent::posture {
namespace {

/// 7 for "sha256:7"; kPcrCount when the key has no index.
unsigned pcr_index(std::string_view key) {
  const auto colon = key.rfind(':');
  unsigned index = kPcrCount;
  if (colon == std::string_view::npos) return index;
  std::from_chars(key.data() + colon + 1, key.data() + key.size(), index);
  return index;
}

}  // namespace

void PcrSource::rebaseline(const TpmProbe::Reading& reading) {
  reference_ = reading.pcrs;
  reported_.clear();
}

void PcrSource::check(const std::map<std::string, std::string>& pcrs, SteadyTime detected) {
  std::set<std::string> keys;
  for (const auto& [key, value] : reference_) keys.insert(key);
  for (const auto& [key, value] : pcrs) keys.insert(key);
  for (const auto& key : keys) {
    auto ref = reference_.find(key);
    auto cur = pcrs.find(key);
    const std::string reference = ref == reference_.end() ? kAbsent : ref->second;
    const std::string current = cur == pcrs.end() ? kAbsent : cur->second;
    const unsigned index = pcr_index(key);
    if (container_log_ != nullptr && index == container_log_->pcr()) {
      // The container PCR moves with every container start and stop; it must always equal the
      // container log's replay. A value the log does not explain is tampering.
      const auto expected = container_log_->expected_value();
      const auto bank = hash_from_name(key.substr(0, key.find(':')));
      const auto want = bank ? expected.find(*bank) : expected.end();
      if (want != expected.end() && cur != pcrs.end() &&
          is_new(reported_, "container " + key, want->second, current)) {
        observer_.observe({Trigger::kContainerPcrUnexplained, "pcr " + key + " (container log)",
                           want->second, current, std::nullopt, std::nullopt, "", detected});
      }
      continue;
    }
    if (is_new(reported_, "pcr " + key, reference, current)) {
      observer_.observe({index == ima_pcr_ ? Trigger::kImaPcrChanged : Trigger::kPcrChanged,
                         "pcr " + key, reference, current, std::nullopt, std::nullopt, "",
                         detected});
    }
  }
}

}  // namespace warden::agent::posture
