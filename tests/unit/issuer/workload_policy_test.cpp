#include "issuer/workload_policy.h"

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

constexpr std::string_view kPolicy = R"(
version = "w1"

[pcrs.sha256]
0 = "replay-only"

[[workload]]
name = "web"
audiences = ["https://api.test"]
scopes = ["read", "write"]
max_ttl = 120
[workload.match]
uid = 1000
systemd_unit = "web*.service"

[[workload]]
name = "pinned-image"
audiences = ["https://registry.test", "https://api.test"]
max_ttl = 600
[workload.match]
image_digest = "sha256:aaaa"
group = "edge-*"
)";

WorkloadPolicy policy() {
  auto p = parse_workload_policy(kPolicy);
  EXPECT_TRUE(p) << p.error().message;
  return p ? *p : WorkloadPolicy{};
}

Result<WorkloadGrant> ask(const protocol::WorkloadSelectors& s, std::string_view audience,
                          std::vector<std::string> scopes, std::string_view group = "default") {
  static WorkloadPolicy p = policy();
  return authorize_workload(p, {&s, group, audience, &scopes});
}

TEST(WorkloadPolicy, ParsesRules) {
  auto p = policy();
  ASSERT_EQ(p.rules.size(), 2U);
  EXPECT_EQ(p.rules[0].name, "web");
  EXPECT_EQ(p.rules[0].uid, 1000U);
  EXPECT_EQ(p.rules[0].max_ttl, 120);
  EXPECT_EQ(p.rules[1].group, "edge-*");
  EXPECT_TRUE(p.rules[1].scopes.empty());
}

TEST(WorkloadPolicy, NoWorkloadTablesMeansDenyAll) {
  auto p = parse_workload_policy("version = \"x\"\n");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->rules.empty());
  protocol::WorkloadSelectors s;
  s.uid = 0;
  std::vector<std::string> scopes;
  auto r = authorize_workload(*p, {&s, "g", "https://api.test", &scopes});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
}

TEST(WorkloadPolicy, EverySelectorOfARuleMustMatch) {
  protocol::WorkloadSelectors s;
  s.uid = 1000;
  s.systemd_unit = "web-frontend.service";
  auto ok = ask(s, "https://api.test", {"read"});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->rule, "web");
  EXPECT_EQ(ok->max_ttl, 120);

  s.systemd_unit = "db.service";
  EXPECT_EQ(ask(s, "https://api.test", {"read"}).error().code, ErrorCode::kPermissionDenied);
  s.systemd_unit.reset();  // a selector the rule names but the workload lacks
  EXPECT_EQ(ask(s, "https://api.test", {"read"}).error().code, ErrorCode::kPermissionDenied);
}

TEST(WorkloadPolicy, AudienceAndScopesAreChecked) {
  protocol::WorkloadSelectors s;
  s.uid = 1000;
  s.systemd_unit = "web.service";
  EXPECT_EQ(ask(s, "https://other.test", {}).error().code, ErrorCode::kAudienceMismatch);
  auto scope = ask(s, "https://api.test", {"read", "admin"});
  ASSERT_FALSE(scope);
  EXPECT_EQ(scope.error().code, ErrorCode::kPolicyViolation);
  EXPECT_NE(scope.error().message.find("admin"), std::string::npos);
}

TEST(WorkloadPolicy, DigestsCompareExactlyAndGroupsGlob) {
  protocol::WorkloadSelectors s;
  s.container_id = "c1";
  s.container_runtime = "podman";
  s.image_digest = "sha256:aaaa";
  auto ok = ask(s, "https://registry.test", {}, "edge-eu");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->rule, "pinned-image");
  EXPECT_EQ(ask(s, "https://registry.test", {}, "core").error().code, ErrorCode::kPermissionDenied);
  s.image_digest = "sha256:aaa*";
  EXPECT_EQ(ask(s, "https://registry.test", {}, "edge-eu").error().code,
            ErrorCode::kPermissionDenied);
  // No scopes granted: asking for one is refused.
  s.image_digest = "sha256:aaaa";
  EXPECT_EQ(ask(s, "https://registry.test", {"read"}, "edge-eu").error().code,
            ErrorCode::kPolicyViolation);
}

TEST(WorkloadPolicy, ADeviceWithoutAnAssignedGroupMatchesNoGroupRule) {
  // Issue 31: the group is the operator's assignment; a device nobody placed (empty group) is in
  // none, even for a rule that matches every group.
  auto p = parse_workload_policy(R"(
version = "g"
[[workload]]
name = "any-group"
audiences = ["payments"]
scopes = ["pay"]
[workload.match]
group = "*"
)");
  ASSERT_TRUE(p) << p.error().message;
  protocol::WorkloadSelectors s;
  std::vector<std::string> scopes{"pay"};
  auto none = authorize_workload(*p, {&s, "", "payments", &scopes});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kPermissionDenied);
  auto placed = authorize_workload(*p, {&s, "payments-prod", "payments", &scopes});
  ASSERT_TRUE(placed) << placed.error().message;
  EXPECT_EQ(placed->rule, "any-group");
}

TEST(WorkloadPolicy, TheContainerSelectorKeepsHostAndContainersApart) {
  auto p = parse_workload_policy(R"(
[[workload]]
name = "host-root"
audiences = ["a"]
[workload.match]
uid = 0

[[workload]]
name = "podman-root"
audiences = ["a"]
[workload.match]
uid = 0
container = "podman"

[[workload]]
name = "strays"
audiences = ["b"]
[workload.match]
uid = 0
container = "unidentified"

[[workload]]
name = "any-image"
audiences = ["c"]
[workload.match]
image_ref = "*"
)");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->rules[0].container, "host");
  EXPECT_EQ(p->rules[3].container, "any");
  std::vector<std::string> none;
  auto rule_for = [&](const protocol::WorkloadSelectors& s, std::string_view aud) -> std::string {
    auto r = authorize_workload(*p, {&s, "", aud, &none});
    return r ? r->rule : "refused";
  };
  protocol::WorkloadSelectors host;
  host.uid = 0;
  EXPECT_EQ(rule_for(host, "a"), "host-root");
  EXPECT_EQ(rule_for(host, "b"), "refused");

  protocol::WorkloadSelectors podman = host;
  podman.container_id = std::string(64, 'a');
  podman.container_runtime = "podman";
  EXPECT_EQ(rule_for(podman, "a"), "podman-root");
  EXPECT_EQ(rule_for(podman, "b"), "refused");
  EXPECT_EQ(rule_for(podman, "c"), "refused");  // no image known: an image rule cannot match
  podman.image_ref = "localhost/app:1";
  EXPECT_EQ(rule_for(podman, "c"), "any-image");

  protocol::WorkloadSelectors docker = host;
  docker.container_id = std::string(64, 'b');
  docker.container_runtime = "docker";
  EXPECT_EQ(rule_for(docker, "a"), "refused");  // neither the host rule nor podman's

  protocol::WorkloadSelectors stray = host;
  stray.container_id = "mnt:4026532241,pid:4026532244";
  stray.container_runtime = "unidentified";
  stray.image_ref = "x";
  EXPECT_EQ(rule_for(stray, "a"), "refused");
  EXPECT_EQ(rule_for(stray, "c"), "refused");  // "any" is not "unidentified"
  EXPECT_EQ(rule_for(stray, "b"), "strays");
}

TEST(WorkloadPolicy, RejectsBadRules) {
  const char* bad[] = {
      "[[workload]]\naudiences = [\"a\"]\n",                                      // no match
      "[[workload]]\naudiences = [\"a\"]\n[workload.match]\n",                    // empty match
      "[[workload]]\n[workload.match]\nuid = 1\n",                                // no audience
      "[[workload]]\naudiences = [\"a\"]\n[workload.match]\nhostname = \"x\"\n",  // unknown
                                                                                  // selector
      "[[workload]]\naudiences = [\"a\"]\nmax_ttl = 0\n[workload.match]\nuid = 1\n",
      "[[workload]]\naudiences = [\"a\"]\nttl = 5\n[workload.match]\nuid = 1\n",  // unknown key
      "[[workload]]\naudiences = [\"a\"]\n[workload.match]\nuid = -1\n",
      // Floats are not integers; 1e20 once reached toml++'s float-to-int cast (UB).
      "[[workload]]\naudiences = [\"a\"]\nmax_ttl = 1e20\n[workload.match]\nuid = 1\n",
      "[[workload]]\naudiences = [\"a\"]\nmax_ttl = 60.0\n[workload.match]\nuid = 1\n",
      "[[workload]]\naudiences = [\"a\"]\n[workload.match]\nuid = 1e20\n",
      "[[workload]]\naudiences = [\"a\"]\n[workload.match]\nuid = 1\ncontainer = \"lxc\"\n",
      "workload = 3\n",
      "[[workload]\n",
  };
  for (const char* text : bad) {
    auto p = parse_workload_policy(text);
    EXPECT_FALSE(p) << text;
  }
}

}  // namespace
}  // namespace warden::issuer
