#include "issuer/admin/admin_json.h"

#include "attest/token/json.h"

namespace warden::issuer::admin {
namespace {

namespace bj = boost::json;

bj::value parsed_or_text(const std::string& text) {
  auto v = json::parse(text, {.max_size = 1 << 20, .max_depth = 16});
  if (v) return std::move(*v);
  return bj::value(text);
}

bj::value text_or_null(const std::string& text) {
  return text.empty() ? bj::value(nullptr) : bj::value(text);
}

bj::object device_json(const Device& d) {
  bj::object o;
  o["id"] = d.id;
  o["state"] = std::string(to_string(d.state));
  // group: the admin's assignment (what policy sees); requested_group: the device's own ask.
  o["group"] = text_or_null(d.group);
  o["requested_group"] = text_or_null(d.requested_group);
  o["ek_public_hash"] = d.ek_public_hash;
  o["ek_certificate"] = text_or_null(d.ek_cert_pem);
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

std::string to_json(const DevicePage& page) {
  bj::array list;
  for (const Device& d : page.devices) list.push_back(device_json(d));
  bj::object o;
  o["devices"] = std::move(list);
  o["next_after"] = page.next_after ? bj::value(*page.next_after) : bj::value(nullptr);
  return json::serialize(o);
}

std::string to_json(const DeviceDetail& detail) {
  bj::object o = device_json(detail.device);
  bj::array live;
  for (const TokenRecord& t : detail.live_tokens) {
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

std::string to_json(const PolicyVersion& policy) {
  return json::serialize(policy_json(policy, false));
}

std::string to_json(const std::vector<PolicyVersion>& policies) {
  bj::array list;
  for (const PolicyVersion& p : policies) list.push_back(policy_json(p, true));
  bj::object o;
  o["policies"] = std::move(list);
  return json::serialize(o);
}

std::string to_json(const std::vector<AuditRecord>& records) {
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

}  // namespace warden::issuer::admin
