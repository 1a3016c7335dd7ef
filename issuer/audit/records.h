#pragma once
// What the issuer records in its audit log, as types: an action, a decision, and the details of
// that action. to_record() is the one place they become the store's AuditRecord text.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "attest/protocol/messages.h"
#include "issuer/store/store.h"

namespace warden::issuer::audit {

enum class Action {
  kEnroll,
  kActivate,
  kAttest,
  kToken,
  kRevoke,
  kRefusalsSuppressed,
  kDeviceState,
  kDeviceDelete,
  kDeviceGroup,
  kPolicy,
  kSsfReceiver,
};
enum class Decision { kOk, kAccept, kReject };

/// The stored names ("admin.device_state", "accept", ...): docs/issuer-admin-api.md.
std::string_view to_string(Action action);
std::string_view to_string(Decision decision);

/// Reasons of a decision, as the agent API reports them.
using Reasons = std::vector<protocol::Reason>;
struct EnrollmentStarted {
  std::string trust;
  std::string hostname;
  std::string machine_id;
  std::string enrollment_id;
};
struct TokenGrant {
  std::string rule;
  std::string jti;
  std::string audience;
  std::uint64_t status_index = 0;
};
struct RevokeApplied {
  std::int64_t timestamp = 0;  ///< the signed request's
  std::string reason;
  std::uint64_t revoked = 0;
  std::vector<std::string> jtis;
};
struct DeviceStateSet {
  std::string actor;
  std::string state;
  std::uint64_t tokens_revoked = 0;
};
struct DeviceDeleted {
  std::string actor;
  std::string ek_public_hash;
  std::uint64_t tokens_revoked = 0;
};
struct DeviceGroupSet {
  std::string actor;
  std::string group;
  std::string previous_group;
  std::string requested_group;
};
struct PolicyStored {
  std::string actor;
  std::int64_t id = 0;
  std::uint64_t workload_rules = 0;
};
struct SsfReceiverSet {
  std::string actor;
  std::string name;
  std::string op;  ///< "add" or "delete"
};
using Details = std::variant<Reasons, EnrollmentStarted, TokenGrant, RevokeApplied, DeviceStateSet,
                             DeviceDeleted, DeviceGroupSet, PolicyStored, SsfReceiverSet>;

struct Event {
  std::int64_t time = 0;  ///< 0: the log's clock when written
  std::string device_id;
  Action action = Action::kAttest;
  Decision decision = Decision::kOk;
  std::string evidence_hash;
  std::string policy_version;
  Details details;
};

/// reasons -> JSON array text [{"code","subject","expected","found"}].
std::string reasons_json(const Reasons& reasons);
/// The reasons of evidence that changed nothing (not signed by the device's AK, not fresh, or
/// replayed): anyone who knows a device id can send it again and again, with fields of their
/// choosing, so its record keeps at most 16 reasons, each text cut to 128 bytes.
Reasons bound_unvouched(Reasons reasons);
AuditRecord to_record(const Event& event);

}  // namespace warden::issuer::audit
