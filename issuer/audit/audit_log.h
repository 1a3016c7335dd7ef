#pragma once
// The only writer of audit records. Refusals an unauthenticated or misbehaving caller can repeat
// go through a per-device budget (limits.refusal_burst, refusal_per_minute): over it they are
// counted into one summary record ("N refusals suppressed for device X in the last S s"), written
// with the device's next recorded refusal or by housekeeping().

#include <cstddef>

#include "issuer/audit/records.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/refusal_budget.h"

namespace warden::issuer::audit {

class AuditLog {
 public:
  struct Options {
    double refusal_burst = 20;
    double refusal_per_second = 0.2;
    std::size_t max_devices = 4096;  ///< devices with a budget of their own
  };
  AuditLog(Store& store, const Clock& clock, Options options);

  /// Appends the record. An audit failure must not turn a decision into a different one: the
  /// store logs it, the caller carries on.
  void write(const Event& event);
  void write(AuditRecord record);
  /// write() within the device's refusal budget.
  void refusal(const Event& event);
  void refusal(AuditRecord record);
  /// Writes the summaries of refusals suppressed since the last call.
  void housekeeping();

 private:
  void suppressed(const std::string& device_id, std::uint64_t count, std::chrono::seconds over,
                  std::int64_t t);

  Store& store_;
  const Clock& clock_;
  RefusalBudget refusals_;  // has its own lock
};

}  // namespace warden::issuer::audit
