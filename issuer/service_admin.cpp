// The admin API's JSON (docs/issuer-admin-api.md).
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

bj::value parsed_or_text(const std::string& text) {
  auto v = json::parse(text, {.max_size = 1 << 20, .max_depth = 16});
  if (v) return std::move(*v);
  return bj::value(text);
}

bj::object device_json(const Device& d) {
  bj::object o;
  o["id"] = d.id;
  o["state"] = std::string(to_string(d.state));
  // group: the admin's assignment (what policy sees); requested_group: the device's own ask.
  o["group"] = d.group.empty() ? bj::value(nullptr) : bj::value(d.group);
  o["requested_group"] =
      d.requested_group.empty() ? bj::value(nullptr) : bj::value(d.requested_group);
  o["ek_public_hash"] = d.ek_public_hash;
  o["ek_certificate"] = d.ek_cert_pem.empty() ? bj::value(nullptr) : bj::value(d.ek_cert_pem);
  o["created_at"] = d.created_at;
  o["reset_count"] = d.reset_count ? bj::value(*d.reset_count) : bj::value(nullptr);
  o["restart_count"] = d.restart_count ? bj::value(*d.restart_count) : bj::value(nullptr);
  o["last_attested_at"] = d.last_attested_at;
  o["last_verdict"] = d.last_verdict;
  o["last_reasons"] = parsed_or_text(d.last_reasons_json);
  o["has_binding_key"] = !d.binding_key_public.empty();
  o["ima_next_offset"] = d.ima_entries;
  o["revoked_at"] = d.revoked_at;
  return o;
}

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

bj::object policy_json(const PolicyVersion& p, bool with_text) {
  bj::object o;
  o["id"] = p.id;
  o["version"] = p.version;
  o["created_at"] = p.created_at;
  o["active"] = p.active;
  if (with_text) o["toml"] = p.toml;
  return o;
}

}  // namespace

Result<std::string> Service::admin_list_devices(std::size_t limit, std::string_view after_id) {
  limit = std::clamp<std::size_t>(limit == 0 ? 100 : limit, 1, 1000);
  WARDEN_ASSIGN(devices, options_.store->list_devices(limit, after_id));
  bj::array list;
  for (const Device& d : devices) list.push_back(device_json(d));
  bj::object o;
  o["devices"] = std::move(list);
  o["next_after"] = devices.size() == limit ? bj::value(devices.back().id) : bj::value(nullptr);
  return json::serialize(o);
}

Result<std::string> Service::admin_get_device(std::string_view id) {
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  WARDEN_ASSIGN(tokens, options_.store->live_tokens(id, now()));
  bj::object o = device_json(device);
  bj::array live;
  for (const TokenRecord& t : tokens) {
    bj::object j;
    j["jti"] = t.jti;
    j["status_index"] = t.status_index;
    j["issued_at"] = t.issued_at;
    j["expires_at"] = t.expires_at;
    live.push_back(std::move(j));
  }
  o["live_tokens"] = std::move(live);
  return json::serialize(o);
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
  // Revoking records when: device tokens minted before it stay refused after an enable.
  auto set = next == DeviceState::kRevoked ? options_.store->revoke_device(id, now())
                                           : options_.store->set_device_state(id, next);
  forget_device(id);
  WARDEN_TRY_STATUS(set);
  std::uint64_t revoked = 0;
  if (next == DeviceState::kRevoked) {
    WARDEN_ASSIGN(n, revoke_all_tokens(id));
    revoked = n;
  }
  audit_log_.write(Event{now(), std::string(id), Action::kDeviceState, Decision::kOk, "", "",
                         DeviceStateSet{std::string(actor), std::string(state), revoked}});
  return ok();
}

Status Service::admin_delete_device(std::string_view id, std::string_view actor) {
  WARDEN_ASSIGN(device, options_.store->get_device(id));
  // Tokens first: a failure leaves the device in place, and the call can be repeated. Its device
  // tokens stop at once too: the token path finds no device record.
  WARDEN_ASSIGN(revoked, revoke_all_tokens(id));
  auto removed = options_.store->remove_device(id);
  forget_device(id);
  WARDEN_TRY_STATUS(removed);
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

Result<std::string> Service::admin_put_policy(std::string_view version, std::string_view toml,
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
  return json::serialize(policy_json(stored, false));
}

Result<std::string> Service::admin_list_policies() {
  WARDEN_ASSIGN(policies, options_.store->list_policies());
  bj::array list;
  for (const PolicyVersion& p : policies) list.push_back(policy_json(p, true));
  bj::object o;
  o["policies"] = std::move(list);
  return json::serialize(o);
}

Result<std::string> Service::admin_audit(const AuditFilter& filter) {
  AuditFilter f = filter;
  f.limit = std::clamp<std::size_t>(f.limit == 0 ? 100 : f.limit, 1, 1000);
  WARDEN_ASSIGN(records, options_.store->query_audit(f));
  bj::array list;
  for (const AuditRecord& a : records) {
    bj::object o;
    o["id"] = a.id;
    o["time"] = a.time;
    o["device_id"] = a.device_id;
    o["action"] = a.action;
    o["decision"] = a.decision;
    o["evidence_hash"] = a.evidence_hash;
    o["policy_version"] = a.policy_version;
    o["reasons"] = parsed_or_text(a.reasons_json);
    list.push_back(std::move(o));
  }
  bj::object o;
  o["records"] = std::move(list);
  return json::serialize(o);
}

}  // namespace warden::issuer
