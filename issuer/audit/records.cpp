#include "issuer/audit/records.h"

#include <boost/describe/class.hpp>

#include "attest/token/json.h"

namespace warden::issuer::audit {

// Each action's details are one JSON object, member by member in the order listed here (Boost.JSON
// converts described structs): the order readers of older records saw. RevokeApplied's timestamp
// stays first, schema 5's upgrade reads it back.
BOOST_DESCRIBE_STRUCT(EnrollmentStarted, (), (trust, hostname, machine_id, enrollment_id))
BOOST_DESCRIBE_STRUCT(TokenGrant, (), (rule, jti, audience, status_index))
BOOST_DESCRIBE_STRUCT(RevokeApplied, (), (timestamp, reason, revoked, jtis))
BOOST_DESCRIBE_STRUCT(DeviceStateSet, (), (actor, state, tokens_revoked))
BOOST_DESCRIBE_STRUCT(DeviceDeleted, (), (actor, ek_public_hash, tokens_revoked))
BOOST_DESCRIBE_STRUCT(DeviceGroupSet, (), (actor, group, previous_group, requested_group))
BOOST_DESCRIBE_STRUCT(PolicyStored, (), (actor, id, workload_rules))
BOOST_DESCRIBE_STRUCT(SsfReceiverSet, (), (actor, name, op))

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
    case Action::kSsfReceiver:
      return "admin.ssf_receiver";
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

Reasons bound_unvouched(Reasons reasons) {
  constexpr std::size_t kMaxReasons = 16;
  constexpr std::size_t kMaxText = 128;
  if (reasons.size() > kMaxReasons) {
    const std::size_t dropped = reasons.size() - (kMaxReasons - 1);
    reasons.resize(kMaxReasons - 1);
    reasons.push_back({"limit_exceeded", "reasons", std::nullopt,
                       std::to_string(dropped) + " more not recorded"});
  }
  auto cut = [](std::string& text) {
    if (text.size() <= kMaxText) return;
    const std::size_t n = text.size();
    text.resize(kMaxText);
    text += "…(" + std::to_string(n) + " bytes)";
  };
  for (protocol::Reason& r : reasons) {
    cut(r.code);
    cut(r.subject);
    if (r.expected) cut(*r.expected);
    if (r.found) cut(*r.found);
  }
  return reasons;
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
          return json::serialize(bj::array{bj::value_from(d)});
        }
      },
      event.details);
  return r;
}

}  // namespace warden::issuer::audit
