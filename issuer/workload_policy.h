#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/protocol/messages.h"
#include "platform/base/error.h"

namespace warden::issuer {

/// One [[workload]] table of the policy document (docs/policy.md "Workload policy"): which
/// workloads may receive tokens for which audiences and scopes, and for how long at most.
struct WorkloadRule {
  std::string name;
  // Selectors: every one that is set must match (strings are fnmatch globs, except digests,
  // which compare exactly). At least one is required so that no rule matches everything by
  // accident.
  std::optional<std::uint32_t> uid;
  std::optional<std::string> systemd_unit;
  std::optional<std::string> image_ref;
  std::optional<std::string> image_digest;
  std::optional<std::string> exe_digest;
  std::optional<std::string> group;  ///< the device's operator-assigned group
  /// Where the workload runs: "host" (in no container), "any" (in a container the agent
  /// identified), a runtime ("podman", "docker", ...), or "unidentified" (own namespaces, cgroup
  /// of no known runtime; only this value matches it). Default "any" when the rule names an
  /// image, else "host": a rule written for host processes never matches a container.
  std::string container;
  std::vector<std::string> audiences;  ///< exact audiences this rule grants
  std::vector<std::string> scopes;     ///< every requested scope must be listed
  std::int64_t max_ttl = 300;          ///< seconds
};

/// Default deny: a workload with no matching rule gets nothing.
struct WorkloadPolicy {
  std::vector<WorkloadRule> rules;
};

/// Parses the [[workload]] tables of a policy TOML document (other tables are ignored: they are
/// attest::policy's). Errors name the table index and key.
Result<WorkloadPolicy> parse_workload_policy(std::string_view toml);

struct WorkloadRequest {
  const protocol::WorkloadSelectors* selectors = nullptr;
  /// The group an admin assigned to the device (never what the device asked for); empty when
  /// none, which matches no `group` selector.
  std::string_view group;
  std::string_view audience;
  const std::vector<std::string>* scopes = nullptr;
};

struct WorkloadGrant {
  std::string rule;
  std::int64_t max_ttl = 0;
};

/// The first rule whose selectors match and which grants the audience and every scope.
/// kPermissionDenied when no rule matches the selectors, kAudienceMismatch when matching rules
/// do not grant the audience, kPolicyViolation when they do not grant every scope.
Result<WorkloadGrant> authorize_workload(const WorkloadPolicy& policy,
                                         const WorkloadRequest& request);

}  // namespace warden::issuer
