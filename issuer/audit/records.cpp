#include "issuer/audit/records.h"

#include "attest/token/json.h"

namespace warden::issuer::audit {
namespace {

namespace bj = boost::json;

bj::object reason_json(const protocol::Reason& r) {
  bj::object o;
  o["code"] = r.code;
  o["subject"] = r.subject;
  if (r.expected) o["expected"] = *r.expected;
  if (r.found) o["found"] = *r.found;
  return o;
}

// One object per action; the member order is what readers of older records saw.
bj::object why(const EnrollmentStarted& e) {
  bj::object o;
  o["trust"] = e.trust;
  o["hostname"] = e.hostname;
  o["machine_id"] = e.machine_id;
  o["enrollment_id"] = e.enrollment_id;
  return o;
}
bj::object why(const TokenGrant& g) {
  bj::object o;
  o["rule"] = g.rule;
  o["jti"] = g.jti;
  o["audience"] = g.audience;
  o["status_index"] = g.status_index;
  return o;
}
bj::object why(const RevokeApplied& r) {
  bj::object o;
  o["timestamp"] = r.timestamp;  // first member: schema 5's upgrade reads it back
  o["reason"] = r.reason;
  o["revoked"] = r.revoked;
  bj::array jtis;
  for (const auto& j : r.jtis) jtis.push_back(bj::value(j));
  o["jtis"] = std::move(jtis);
  return o;
}
bj::object why(const DeviceStateSet& s) {
  bj::object o;
  o["actor"] = s.actor;
  o["state"] = s.state;
  o["tokens_revoked"] = s.tokens_revoked;
  return o;
}
bj::object why(const DeviceDeleted& d) {
  bj::object o;
  o["actor"] = d.actor;
  o["ek_public_hash"] = d.ek_public_hash;
  o["tokens_revoked"] = d.tokens_revoked;
  return o;
}
bj::object why(const DeviceGroupSet& g) {
  bj::object o;
  o["actor"] = g.actor;
  o["group"] = g.group;
  o["previous_group"] = g.previous_group;
  o["requested_group"] = g.requested_group;
  return o;
}
bj::object why(const PolicyStored& p) {
  bj::object o;
  o["actor"] = p.actor;
  o["id"] = p.id;
  o["workload_rules"] = p.workload_rules;
  return o;
}

}  // namespace

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kEnroll:
      return "enroll";
    case Action::kActivate:
      return "activate";
    case Action::kAttest:
      return "attest";
    case Action::kToken:
      return "token";
    case Action::kRevoke:
      return "revoke";
    case Action::kRefusalsSuppressed:
      return "refusals_suppressed";
    case Action::kDeviceState:
      return "admin.device_state";
    case Action::kDeviceDelete:
      return "admin.device_delete";
    case Action::kDeviceGroup:
      return "admin.device_group";
    case Action::kPolicy:
      return "admin.policy";
  }
  return "unknown";
}

std::string_view to_string(Decision decision) {
  switch (decision) {
    case Decision::kOk:
      return "ok";
    case Decision::kAccept:
      return "accept";
    case Decision::kReject:
      return "reject";
  }
  return "unknown";
}

std::string reasons_json(const Reasons& reasons) {
  bj::array a;
  for (const auto& r : reasons) a.push_back(reason_json(r));
  return json::serialize(a);
}

AuditRecord to_record(const Event& event) {
  AuditRecord r;
  r.time = event.time;
  r.device_id = event.device_id;
  r.action = std::string(to_string(event.action));
  r.decision = std::string(to_string(event.decision));
  r.evidence_hash = event.evidence_hash;
  r.policy_version = event.policy_version;
  r.reasons_json = std::visit(
      [](const auto& d) -> std::string {
        if constexpr (std::is_same_v<std::decay_t<decltype(d)>, Reasons>) {
          return reasons_json(d);
        } else {
          return json::serialize(bj::array{why(d)});
        }
      },
      event.details);
  return r;
}

}  // namespace warden::issuer::audit
