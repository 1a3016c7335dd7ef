#include "issuer/workload_policy.h"

#include <algorithm>
#include <fnmatch.h>

#include <toml++/toml.h>

namespace warden::issuer {
namespace {

constexpr std::size_t kMaxPolicy = 1024 * 1024;
constexpr std::int64_t kMaxTtl = 86400;
constexpr std::string_view kContainerValues[] = {"host",   "any",      "unidentified",
                                                 "docker", "podman",   "containerd",
                                                 "cri-o",  "kubepods", "systemd-nspawn"};

Error bad(std::size_t index, std::string_view key, std::string_view what) {
  return Error{ErrorCode::kInvalidArgument,
               "policy: workload[" + std::to_string(index) + "]." + std::string(key) + ": " +
                   std::string(what),
               0, 0};
}

Result<std::vector<std::string>> string_list(const toml::table& t, std::size_t index,
                                             std::string_view key) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (n == nullptr) return out;
  const toml::array* a = n->as_array();
  if (a == nullptr) return fail(bad(index, key, "expected an array of strings"));
  for (const toml::node& item : *a) {
    auto s = item.value<std::string>();
    if (!s || s->empty()) return fail(bad(index, key, "expected non-empty strings"));
    out.push_back(std::move(*s));
  }
  return out;
}

Status opt_string(const toml::table& t, std::size_t index, std::string_view key,
                  std::optional<std::string>& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return ok();
  auto s = n->value<std::string>();
  if (!s || s->empty()) return fail(bad(index, key, "expected a non-empty string"));
  out = std::move(*s);
  return ok();
}

Result<WorkloadRule> parse_rule(const toml::table& t, std::size_t index) {
  static constexpr std::string_view kKeys[] = {"name", "audiences", "scopes", "max_ttl", "match"};
  for (const auto& [k, v] : t) {
    if (std::find(std::begin(kKeys), std::end(kKeys), k.str()) == std::end(kKeys))
      return fail(bad(index, k.str(), "unknown key"));
  }
  WorkloadRule r;
  auto name = t["name"].value<std::string>();
  r.name = name ? *name : "workload[" + std::to_string(index) + "]";
  auto audiences = string_list(t, index, "audiences");
  if (!audiences) return fail(audiences.error());
  if (audiences->empty()) return fail(bad(index, "audiences", "at least one audience required"));
  r.audiences = std::move(*audiences);
  auto scopes = string_list(t, index, "scopes");
  if (!scopes) return fail(scopes.error());
  r.scopes = std::move(*scopes);
  if (const toml::node* ttl = t.get("max_ttl")) {
    auto v = ttl->value_exact<std::int64_t>();
    if (!v || *v <= 0 || *v > kMaxTtl)
      return fail(bad(index, "max_ttl", "expected seconds in 1..86400"));
    r.max_ttl = *v;
  }
  const toml::table* m = t["match"].as_table();
  if (m == nullptr) return fail(bad(index, "match", "required table of selectors"));
  static constexpr std::string_view kSelectors[] = {
      "uid", "systemd_unit", "image_ref", "image_digest", "exe_digest", "group", "container"};
  for (const auto& [k, v] : *m) {
    if (std::find(std::begin(kSelectors), std::end(kSelectors), k.str()) == std::end(kSelectors))
      return fail(bad(index, "match." + std::string(k.str()), "unknown selector"));
  }
  if (m->empty()) return fail(bad(index, "match", "needs at least one selector"));
  if (const toml::node* uid = m->get("uid")) {
    auto v = uid->value_exact<std::int64_t>();
    if (!v || *v < 0 || *v > 0xFFFFFFFF) return fail(bad(index, "match.uid", "expected a uid"));
    r.uid = static_cast<std::uint32_t>(*v);
  }
  WARDEN_TRY_STATUS(opt_string(*m, index, "systemd_unit", r.systemd_unit));
  WARDEN_TRY_STATUS(opt_string(*m, index, "image_ref", r.image_ref));
  WARDEN_TRY_STATUS(opt_string(*m, index, "image_digest", r.image_digest));
  WARDEN_TRY_STATUS(opt_string(*m, index, "exe_digest", r.exe_digest));
  WARDEN_TRY_STATUS(opt_string(*m, index, "group", r.group));
  std::optional<std::string> container;
  WARDEN_TRY_STATUS(opt_string(*m, index, "container", container));
  if (container && std::find(std::begin(kContainerValues), std::end(kContainerValues),
                             *container) == std::end(kContainerValues)) {
    return fail(bad(index, "match.container",
                    "expected host, any, unidentified or a runtime (docker, podman, containerd, "
                    "cri-o, kubepods, systemd-nspawn)"));
  }
  r.container = container.value_or(r.image_ref || r.image_digest ? "any" : "host");
  return r;
}

bool container_matches(const std::string& want, const protocol::WorkloadSelectors& s) {
  const bool in_container = s.container_id && !s.container_id->empty();
  if (want == "host") return !in_container;
  if (!in_container) return false;
  const std::string runtime = s.container_runtime.value_or("");
  if (want == "any") return runtime != "unidentified";
  return runtime == want;
}

bool glob(const std::string& pattern, const std::optional<std::string>& value) {
  return value && fnmatch(pattern.c_str(), value->c_str(), 0) == 0;
}

bool selectors_match(const WorkloadRule& r, const WorkloadRequest& q) {
  const protocol::WorkloadSelectors& s = *q.selectors;
  if (!container_matches(r.container, s)) return false;
  if (r.uid && (!s.uid || *s.uid != *r.uid)) return false;
  if (r.systemd_unit && !glob(*r.systemd_unit, s.systemd_unit)) return false;
  if (r.image_ref && !glob(*r.image_ref, s.image_ref)) return false;
  if (r.image_digest && (!s.image_digest || *s.image_digest != *r.image_digest)) return false;
  if (r.exe_digest && (!s.exe_digest || *s.exe_digest != *r.exe_digest)) return false;
  // The group is the operator's assignment (admin_set_device_group); a device without one is in
  // no group, so that even `group = "*"` grants nothing to a device nobody has placed.
  if (r.group &&
      (q.group.empty() || fnmatch(r.group->c_str(), std::string(q.group).c_str(), 0) != 0))
    return false;
  return true;
}

bool contains(const std::vector<std::string>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

Result<WorkloadPolicy> parse_workload_policy(std::string_view text) {
  if (text.size() > kMaxPolicy) return fail(ErrorCode::kLimitExceeded, "policy: larger than 1 MiB");
  WorkloadPolicy policy;
  try {
    toml::table root = toml::parse(text);
    const toml::node* w = root.get("workload");
    if (w == nullptr) return policy;
    const toml::array* a = w->as_array();
    if (a == nullptr)
      return fail(ErrorCode::kInvalidArgument,
                  "policy: workload: expected an array of tables ([[workload]])");
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::table* t = a->get(i)->as_table();
      if (t == nullptr) return fail(bad(i, "", "expected a table"));
      auto rule = parse_rule(*t, i);
      if (!rule) return fail(rule.error());
      policy.rules.push_back(std::move(*rule));
    }
  } catch (const toml::parse_error& e) {
    return fail(ErrorCode::kMalformed, "policy: TOML syntax at line " +
                                           std::to_string(e.source().begin.line) + ": " +
                                           std::string(e.description()));
  }
  return policy;
}

Result<WorkloadGrant> authorize_workload(const WorkloadPolicy& policy,
                                         const WorkloadRequest& request) {
  bool any_selector = false;
  bool any_audience = false;
  std::string missing_scopes;
  for (const WorkloadRule& r : policy.rules) {
    if (!selectors_match(r, request)) continue;
    any_selector = true;
    if (!contains(r.audiences, request.audience)) continue;
    any_audience = true;
    std::string missing;
    for (const std::string& s : *request.scopes) {
      if (!contains(r.scopes, s)) missing += (missing.empty() ? "" : " ") + s;
    }
    if (missing.empty()) return WorkloadGrant{r.name, r.max_ttl};
    missing_scopes = "rule " + r.name + " does not grant: " + missing;
  }
  if (!any_selector)
    return fail(ErrorCode::kPermissionDenied,
                "workload policy: no [[workload]] rule matches this workload's selectors "
                "(default deny)");
  if (!any_audience)
    return fail(ErrorCode::kAudienceMismatch, "workload policy: audience " +
                                                  std::string(request.audience) +
                                                  " is not granted to this workload");
  return fail(ErrorCode::kPolicyViolation, "workload policy: scopes refused; " + missing_scopes);
}

}  // namespace warden::issuer
