// The admin operations (docs/issuer-admin-api.md; issuer/admin/admin_json.h is their JSON), and
// the active policy they put.
#include <algorithm>

#include "attest/token/json.h"
#include "issuer/service_impl.h"

namespace warden::issuer {
namespace {

namespace bj = boost::json;
using audit::Action;
using audit::Decision;
using audit::DeviceDeleted;
using audit::DeviceGroupSet;
using audit::DeviceStateSet;
using audit::Event;
using audit::PolicyStored;

// A group is a name the operator chooses, compared by `match.group` globs: keep glob characters
// and anything a log or shell would treat specially out of it.
Status check_group_name(std::string_view group) {
  constexpr std::size_t kMaxGroup = 64;
  const bool valid =
      group.size() <= kMaxGroup && std::all_of(group.begin(), group.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
      });
  if (valid) return ok();
  return fail(ErrorCode::kInvalidArgument,
              "admin: group expected up to 64 of [A-Za-z0-9._-], found " + quote_untrusted(group));
}

}  // namespace

Result<DevicePage> Service::admin_list_devices(std::size_t limit, std::string_view after_id) {
  limit = std::clamp<std::size_t>(limit == 0 ? 100 : limit, 1, 1000);
  WARDEN_ASSIGN(devices, options_.store->list_devices(limit, after_id));
  DevicePage page;
  if (devices.size() == limit) page.next_after = devices.back().id;
  page.devices = std::move(devices);
  return page;
}

Result<DeviceDetail> Service::admin_get_device(std::string_view id) {
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  WARDEN_ASSIGN(tokens, options_.store->live_tokens(id, now()));
  return DeviceDetail{std::move(device), std::move(tokens)};
}

Status Service::admin_set_device_state(std::string_view id, std::string_view state,
                                       std::string_view actor) {
  DeviceState next;
  if (state == "revoked") {
    next = DeviceState::kRevoked;
  } else if (state == "enabled") {
    next = DeviceState::kEnabled;
  } else {
    return fail(
        ErrorCode::kInvalidArgument,
        "admin: state expected \"revoked\" or \"enabled\", found \"" + std::string(state) + "\"");
  }
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  const std::int64_t t = now();
  const bool was_compliant =
      device.state == DeviceState::kEnabled && device.last_verdict == "accept";
  const bool compliant = next == DeviceState::kEnabled && device.last_verdict == "accept";
  // Revoking records when: device tokens minted before it stay refused after an enable.
  DeviceChange change;
  change.device_id = std::string(id);
  change.now = t;
  change.device = next == DeviceState::kRevoked ? DeviceChange::DeviceAction::kRevoke
                                                : DeviceChange::DeviceAction::kEnable;
  change.revoke_live_tokens = next == DeviceState::kRevoked;
  const std::string why =
      next == DeviceState::kRevoked ? "an admin revoked the device" : "an admin enabled the device";
  auto set = apply_change(std::move(change), [&](const std::vector<TokenRecord>& flipped) {
    std::vector<SsfEventDraft> events;
    if (next == DeviceState::kRevoked) {
      events = ssf::revocation_events(device.id, flipped, true, t, ssf::Initiator::kAdmin, why);
    }
    if (was_compliant != compliant) {
      events.push_back(
          ssf::compliance_change(device.id, compliant, t, ssf::Initiator::kAdmin, why));
    }
    return events;
  });
  forget_device(id);
  if (!set) return fail(std::move(set).error());
  const std::uint64_t revoked = set->size();
  audit_log_.write(Event{now(), std::string(id), Action::kDeviceState, Decision::kOk, "", "",
                         DeviceStateSet{std::string(actor), std::string(state), revoked}});
  return ok();
}

Status Service::admin_delete_device(std::string_view id, std::string_view actor) {
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  const std::int64_t t = now();
  const bool was_compliant =
      device.state == DeviceState::kEnabled && device.last_verdict == "accept";
  // One transaction: its tokens revoked, the record gone, the events written. Its device tokens
  // stop at once too: the token path finds no device record.
  DeviceChange change;
  change.device_id = std::string(id);
  change.now = t;
  change.device = DeviceChange::DeviceAction::kRemove;
  change.revoke_live_tokens = true;
  const std::string why = "an admin removed the device";
  auto removed = apply_change(std::move(change), [&](const std::vector<TokenRecord>& flipped) {
    auto events = ssf::revocation_events(device.id, flipped, true, t, ssf::Initiator::kAdmin, why);
    if (was_compliant) {
      events.push_back(ssf::compliance_change(device.id, false, t, ssf::Initiator::kAdmin, why));
    }
    return events;
  });
  forget_device(id);
  if (!removed) return fail(std::move(removed).error());
  const std::uint64_t revoked = removed->size();
  audit_log_.write(Event{now(), std::string(id), Action::kDeviceDelete, Decision::kOk, "", "",
                         DeviceDeleted{std::string(actor), device.ek_public_hash, revoked}});
  return ok();
}

Status Service::admin_set_device_group(std::string_view id, std::string_view group,
                                       std::string_view actor) {
  WARDEN_TRY_STATUS(check_group_name(group));
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  auto set = options_.store->set_device_group(id, group);
  forget_device(id);
  WARDEN_TRY_STATUS(set);
  audit_log_.write(Event{now(), std::string(id), Action::kDeviceGroup, Decision::kOk, "", "",
                         DeviceGroupSet{std::string(actor), std::string(group), device.group,
                                        device.requested_group}});
  return ok();
}

Result<std::shared_ptr<const ActivePolicy>> Service::active_policy() {
  const auto seen = policy_cache_.find(0);
  if (seen.value) return *seen.value;
  WARDEN_ASSIGN(stored, options_.store->active_policy());
  auto cached = policy_cache_.last(0);
  if (!stored) {
    if (!cached) return fail(ErrorCode::kUnavailable, "issuer: no policy has been uploaded");
    return *cached;
  }
  std::shared_ptr<const ActivePolicy> policy;
  if (cached && (*cached)->id >= stored->id) {
    policy = *cached;
  } else {
    WARDEN_ASSIGN(reference, attest::policy::parse_policy(stored->toml));
    WARDEN_ASSIGN(workload, parse_workload_policy(stored->toml));
    auto p = std::make_shared<ActivePolicy>();
    p->id = stored->id;
    p->reference = std::move(reference);
    p->workload = std::move(workload);
    policy = std::move(p);
  }
  // Versions only move forward (each put is a new row): a slower read of an older one loses.
  const std::int64_t id = policy->id;
  policy_cache_.put(0, policy, seen, [id](const auto& c) { return c->id > id; });
  return policy;
}

Result<PolicyVersion> Service::admin_put_policy(std::string_view version, std::string_view toml,
                                                std::string_view actor) {
  auto reference = attest::policy::parse_policy(toml);
  if (!reference) return fail(std::move(reference).error());
  auto workload = parse_workload_policy(toml);
  if (!workload) return fail(std::move(workload).error());
  if (!version.empty() && version != reference->version) {
    return fail(ErrorCode::kInvalidArgument,
                "admin: policy version expected \"" + std::string(version) +
                    "\" (the request), found \"" + reference->version + "\" in the document");
  }
  auto added = options_.store->add_policy(reference->version, toml, now(), true);
  policy_cache_.invalidate_all();
  WARDEN_ASSIGN(stored, std::move(added));
  audit_log_.write(Event{now(), "", Action::kPolicy, Decision::kOk, "", stored.version,
                         PolicyStored{std::string(actor), stored.id, workload->rules.size()}});
  return stored;
}

Result<std::vector<PolicyVersion>> Service::admin_list_policies() {
  return options_.store->list_policies();
}

Result<std::vector<AuditRecord>> Service::admin_audit(const AuditFilter& filter) {
  AuditFilter f = filter;
  f.limit = std::clamp<std::size_t>(f.limit == 0 ? 100 : f.limit, 1, 1000);
  return options_.store->query_audit(f);
}

}  // namespace warden::issuer
