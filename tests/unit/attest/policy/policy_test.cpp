#include "attest/policy/policy.h"

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::attest::policy {
namespace {

const std::string kSha256A(64, 'a');
const std::string kSha256B(64, 'b');

std::string full_policy() {
  return R"(
version = "2026-11-29.1"

[pcrs.sha256]
0 = ")" + kSha256A +
         R"("
7 = [")" +
         kSha256A + R"(", ")" + kSha256B + R"("]
10 = "replay-only"

[boot]
secure_boot = "enabled"
allowed_applications = [")" +
         kSha256A + R"("]
denied_applications = [")" +
         kSha256B + R"("]
denied_digests = [")" +
         std::string(64, 'c') + R"("]

[ima]
exclude = ["/tmp/*"]
deny_paths = ["/usr/bin/nc*"]
deny_digests = ["sha256:)" +
         std::string(64, 'd') + R"("]

[[ima.allow]]
path = "/usr/bin/bash"
digests = ["sha256:)" +
         kSha256A + R"("]

[containers]
allowed_digests = ["sha256:)" +
         kSha256A + R"("]
allowed_refs = ["docker.io/library/*"]
)";
}

Bytes h(const std::string& s) { return *hex_decode(s); }

struct Fixture {
  PcrValues pcrs;
  BootEvidence boot;
  std::vector<ima::Entry> ima;
  std::vector<cel::Record> containers;

  Fixture() {
    pcrs.init_bank(TpmAlg::kSha256);
    (void)pcrs.set(TpmAlg::kSha256, 0, h(kSha256A));
    (void)pcrs.set(TpmAlg::kSha256, 7, h(kSha256B));
    boot.secure_boot = true;
    boot.events.push_back({4, 0x80000003, {{TpmAlg::kSha256, h(kSha256A)}}, h(kSha256A)});
    ima::Entry agg;
    agg.path = "boot_aggregate";
    agg.template_hash = Bytes(20, 1);
    ima.push_back(agg);
    ima::Entry bash;
    bash.path = "/usr/bin/bash";
    bash.digest_algo = "sha256";
    bash.file_digest = h(kSha256A);
    bash.template_hash = Bytes(20, 1);
    ima.push_back(bash);
    ima::Entry tmp = bash;
    tmp.path = "/tmp/scratch";
    tmp.file_digest = Bytes(32, 9);
    ima.push_back(tmp);
    cel::Record r;
    r.content.image_ref = "docker.io/library/nginx:1.25";
    r.content.image_digest = "sha256:" + kSha256B;
    containers.push_back(r);
  }
  std::vector<ima::EntryView> ima_views;  // of `ima`, as of the last evidence()
  Evidence evidence() {
    ima_views = ima::views(ima);
    return {&pcrs, &boot, ima_views, containers};
  }
};

Policy policy() {
  auto p = parse_policy(full_policy());
  EXPECT_TRUE(p) << p.error().message;
  return *p;
}

bool has(const Verdict& v, std::string_view code) {
  return std::any_of(v.reasons.begin(), v.reasons.end(),
                     [&](const Reason& r) { return r.code == code; });
}

TEST(Policy, ParsesFullExample) {
  Policy p = policy();
  EXPECT_EQ(p.version, "2026-11-29.1");
  ASSERT_EQ(p.pcrs.size(), 3u);
  EXPECT_EQ(p.secure_boot, SecureBoot::kEnabled);
  EXPECT_EQ(p.ima_allow.size(), 1u);
  EXPECT_EQ(p.image_refs.size(), 1u);
}

TEST(Policy, CleanEvidencePasses) {
  Fixture f;
  Verdict v = appraise(policy(), f.evidence());
  EXPECT_TRUE(v.pass) << (v.reasons.empty() ? "" : v.reasons[0].code + " " + v.reasons[0].subject);
  EXPECT_EQ(v.policy_version, "2026-11-29.1");
}

TEST(Policy, PcrMismatch) {
  Fixture f;
  (void)f.pcrs.set(TpmAlg::kSha256, 0, h(kSha256B));
  Verdict v = appraise(policy(), f.evidence());
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0].code, "pcr.mismatch");
  EXPECT_EQ(v.reasons[0].subject, "PCR sha256:0");
  EXPECT_EQ(v.reasons[0].found, kSha256B);
}

TEST(Policy, SecureBootAndBootComponents) {
  Fixture f;
  f.boot.secure_boot = false;
  f.boot.events.push_back({4, 0x80000003, {}, h(kSha256B)});
  f.boot.events.push_back({4, 0x80000003, {}, Bytes(32, 0x11)});
  f.boot.events.push_back({1, 0x80000001, {{TpmAlg::kSha256, h(std::string(64, 'c'))}}, {}});
  Verdict v = appraise(policy(), f.evidence());
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.reasons.size(), 4u);
  EXPECT_TRUE(has(v, "boot.secure_boot"));
  EXPECT_TRUE(has(v, "boot.denied_application"));
  EXPECT_TRUE(has(v, "boot.unknown_application"));
  EXPECT_TRUE(has(v, "boot.denied_digest"));
}

TEST(Policy, ImaAllowDenyExclude) {
  Fixture f;
  ima::Entry nc = f.ima[1];
  nc.path = "/usr/bin/ncat";
  f.ima.push_back(nc);
  ima::Entry other = f.ima[1];
  other.path = "/usr/bin/other";
  f.ima.push_back(other);
  ima::Entry bad_bash = f.ima[1];
  bad_bash.file_digest = Bytes(32, 2);
  f.ima.push_back(bad_bash);
  ima::Entry denied = f.ima[1];
  denied.path = "/opt/x";
  denied.file_digest = h(std::string(64, 'd'));
  f.ima.push_back(denied);
  Verdict v = appraise(policy(), f.evidence());
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.reasons.size(), 4u);
  EXPECT_EQ(v.reasons[0].code, "ima.denied");
  EXPECT_EQ(v.reasons[0].subject, "IMA entry 3 /usr/bin/ncat");
  EXPECT_EQ(v.reasons[1].code, "ima.not_allowed");
  EXPECT_EQ(v.reasons[2].code, "ima.digest_mismatch");
  EXPECT_EQ(v.reasons[3].code, "ima.denied");
}

TEST(Policy, ContainerImages) {
  Fixture f;
  cel::Record evil;
  evil.content.container_id = "abc";
  evil.content.image_ref = "evil.example/miner:latest";
  evil.content.image_digest = "sha256:" + kSha256B;
  f.containers.push_back(evil);
  cel::Record pinned = evil;
  pinned.content.image_digest = "sha256:" + kSha256A;
  f.containers.push_back(pinned);
  Verdict v = appraise(policy(), f.evidence());
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0].code, "container.image_not_allowed");
  EXPECT_NE(v.reasons[0].found.find("evil.example"), std::string::npos);
}

TEST(Policy, BadTomlRejectedWithReason) {
  auto syntax = parse_policy("version = \n");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().message.find("line 1"), std::string::npos);
  auto no_version = parse_policy("[boot]\nsecure_boot = \"enabled\"\n");
  ASSERT_FALSE(no_version);
  EXPECT_NE(no_version.error().message.find("version"), std::string::npos);
  auto bad_pcr = parse_policy("version = \"1\"\n[pcrs.sha256]\n24 = \"replay-only\"\n");
  ASSERT_FALSE(bad_pcr);
  EXPECT_NE(bad_pcr.error().message.find("pcrs.sha256.24"), std::string::npos);
  auto bad_sb = parse_policy("version = \"1\"\n[boot]\nsecure_boot = \"maybe\"\n");
  ASSERT_FALSE(bad_sb);
  auto bad_size = parse_policy("version = \"1\"\n[pcrs.sha1]\n0 = \"" + kSha256A + "\"\n");
  ASSERT_FALSE(bad_size);
}

}  // namespace
}  // namespace warden::attest::policy
