#include "issuer/audit/audit_log.h"

namespace warden::issuer::audit {

AuditLog::AuditLog(Store& store, const Clock& clock, Options options)
    : store_(store),
      clock_(clock),
      refusals_({options.refusal_burst, options.refusal_per_second, options.max_devices}) {}

void AuditLog::write(const Event& event) { write(to_record(event)); }

void AuditLog::write(AuditRecord record) {
  if (record.time == 0) record.time = clock_.unix_now();
  (void)store_.append_audit(record);
}

void AuditLog::refusal(const Event& event) { refusal(to_record(event)); }

void AuditLog::refusal(AuditRecord record) {
  auto charge = refusals_.charge(record.device_id);
  if (!charge.record) return;  // counted; reported by the next summary
  if (charge.suppressed > 0) {
    suppressed(charge.key, charge.suppressed, charge.suppressed_for, record.time);
  }
  write(std::move(record));
}

void AuditLog::housekeeping() {
  for (const auto& s : refusals_.drain()) {
    suppressed(s.key, s.suppressed, s.over, clock_.unix_now());
  }
}

void AuditLog::suppressed(const std::string& device_id, std::uint64_t count,
                          std::chrono::seconds over, std::int64_t t) {
  const std::string summary = std::to_string(count) + " refusals suppressed for device " +
                              device_id + " in the last " + std::to_string(over.count()) + " s";
  write(Event{t, device_id, Action::kRefusalsSuppressed, Decision::kReject, "", "",
              Reasons{{"limit_exceeded", "device " + device_id, std::nullopt, summary}}});
}

}  // namespace warden::issuer::audit
