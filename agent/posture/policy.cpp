#include "agent/posture/policy.h"

#include <cstdlib>

namespace warden::agent::posture {

namespace {

constexpr bool rows_in_trigger_order() {
  for (std::size_t i = 0; i < kPolicy.size(); ++i) {
    if (static_cast<std::size_t>(kPolicy[i].trigger) != i) return false;
  }
  return true;
}
static_assert(rows_in_trigger_order(), "kPolicy: one row per Trigger, in enum order");

}  // namespace

const PolicyRow& policy_for(Trigger trigger) { return kPolicy[static_cast<std::size_t>(trigger)]; }

Change classify(Observation observation) {
  const PolicyRow& row = policy_for(observation.trigger);
  Change change;
  change.source = row.source;
  change.action = row.action;
  change.subject = std::move(observation.subject);
  change.old_value = std::move(observation.old_value);
  change.new_value = std::move(observation.new_value);
  change.workload = std::move(observation.workload);
  change.runtime = std::move(observation.runtime);
  change.cgroup_path = std::move(observation.cgroup_path);
  change.detected_at = observation.detected_at;
  return change;
}

}  // namespace warden::agent::posture
