// Sealing to authority-approved PCR policies (TPM2_PolicyAuthorize) on a real swtpm, with the
// approvals built and signed by attest/tpm_policy as the issuer will.
#include <memory>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "attest/quote/quote.h"
#include "attest/token/signer.h"
#include "attest/tpm_policy/authorized_policy.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/tpm.h"
#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

namespace tp = attest::tpm_policy;

struct Authority {
  std::shared_ptr<EVP_PKEY> key{EVP_EC_gen("P-256"), EVP_PKEY_free};
  token::EcSigner signer = token::EcSigner::from_key(key).value();
  Bytes public_area = tp::authority_public_area(key.get()).value();
};

/// What the agent will do with an approval it received: parse the untrusted record, hand the TPM
/// its part.
tpm::PolicyApproval for_tpm(const tp::ApprovedPolicy& approved) {
  auto parsed = tp::ApprovedPolicy::parse(approved.serialize());
  EXPECT_TRUE(parsed) << parsed.error().message;
  tpm::PolicyApproval out{parsed->selection, parsed->approved_policy, parsed->policy_ref,
                          parsed->signature, std::nullopt};
  if (parsed->counter) out.counter = {parsed->counter->index, parsed->counter->value};
  return out;
}

Bytes view_bytes(const SecretBytes& s) { return {s.view().begin(), s.view().end()}; }

class TpmSealing : public SwtpmTest {
 protected:
  tpm::Tpm tpm() const { return tpm::Tpm(tpm_->tcti()); }

  /// The authority's approval of the TPM's current values of `selection`.
  tp::ApprovedPolicy approve_current(const PcrSelection& selection, Authority& authority,
                                     ByteSpan policy_ref,
                                     const std::optional<tpm::SealCounter>& counter = {}) {
    attest::PcrValues values;
    for (const auto& bank : selection.banks) values.init_bank(bank.alg);
    auto read = tpm().read_pcrs(selection);
    EXPECT_TRUE(read) << read.error().message;
    for (const auto& v : *read) EXPECT_TRUE(values.set(v.alg, v.index, v.digest));
    std::optional<tp::CounterCheck> check;
    if (counter) check = tp::CounterCheck{counter->index, counter->name, counter->value};
    auto approved = tp::approve(selection, values, policy_ref, authority.signer, check);
    EXPECT_TRUE(approved) << approved.error().message;
    return *approved;
  }

  void extend(unsigned pcr) {
    ASSERT_TRUE(tpm().extend_pcr(pcr, TpmAlg::kSha256, ossl::sha256(to_bytes("an update"))));
  }

  CommandOutput tools(const std::vector<std::string>& argv) {
    return run_command(argv, tpm_->tools_env());
  }
};

const PcrSelection kBoot = PcrSelection::parse("sha256:7,16").value();

TEST_F(TpmSealing, PolicyDigestsAgreeWithTpm2ToolsAndTheSealedObject) {
  Authority authority;
  const Bytes ref = tp::epoch_policy_ref(1);
  const auto dir = tpm_->dir();
  ASSERT_TRUE(write_file_atomic(dir / "authority.pub", authority.public_area, 0644));
  ASSERT_TRUE(write_file_atomic(dir / "ref.bin", ref, 0644));

  auto load = tools({"tpm2_loadexternal", "-C", "o", "-u", (dir / "authority.pub").string(), "-c",
                     (dir / "authority.ctx").string(), "-n", (dir / "authority.name").string()});
  ASSERT_EQ(load.exit_code, 0) << load.out;
  ASSERT_EQ(tools({"tpm2_flushcontext", "-t"}).exit_code, 0);
  const Bytes name = read_file(dir / "authority.name").value();
  EXPECT_EQ(name, tp::authority_name(authority.public_area).value());

  for (const auto& step : std::vector<std::vector<std::string>>{
           {"tpm2_startauthsession", "-S", (dir / "s.ctx").string()},
           {"tpm2_policyauthorize", "-S", (dir / "s.ctx").string(), "-L",
            (dir / "authorize.policy").string(), "-n", (dir / "authority.name").string(), "-q",
            (dir / "ref.bin").string()},
           {"tpm2_flushcontext", (dir / "s.ctx").string()}}) {
    auto out = tools(step);
    ASSERT_EQ(out.exit_code, 0) << step[0] << ": " << out.out;
  }
  const Bytes authorize = read_file(dir / "authorize.policy").value();
  EXPECT_EQ(authorize, tp::policy_authorize_digest(name, ref).value());

  auto blob = tpm().seal_authorized(authority.public_area, ref, to_bytes("k"));
  ASSERT_TRUE(blob) << blob.error().message;
  // TPM2B_PUBLIC of the KEYEDHASH object: size, type, nameAlg, objectAttributes, authPolicy.
  ByteReader sealed(blob->public_area, "sealed object");
  ASSERT_TRUE(sealed.skip(2, "size"));
  EXPECT_EQ(sealed.u16be("type").value(), 0x0008);
  EXPECT_EQ(sealed.u16be("nameAlg").value(), 0x000b);
  EXPECT_EQ(sealed.u32be("objectAttributes").value() & attest::quote::kUserWithAuth, 0U);
  auto policy = sealed.tpm2b("authPolicy");
  ASSERT_TRUE(policy);
  EXPECT_EQ(Bytes(policy->begin(), policy->end()), authorize);

  extend(16);
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"tpm2_startauthsession", "-S", (dir / "p.ctx").string()},
           {"tpm2_policypcr", "-S", (dir / "p.ctx").string(), "-l", kBoot.to_string(), "-L",
            (dir / "pcr.policy").string()},
           {"tpm2_flushcontext", (dir / "p.ctx").string()}}) {
    auto out = tools(step);
    ASSERT_EQ(out.exit_code, 0) << step[0] << ": " << out.out;
  }
  EXPECT_EQ(read_file(dir / "pcr.policy").value(),
            approve_current(kBoot, authority, ref).approved_policy);
}

TEST_F(TpmSealing, AnUpdateNeedsANewApprovalAndOnlyTheAuthoritysSignatureUnseals) {
  Authority authority;
  Authority other;
  const Bytes ref = tp::epoch_policy_ref(1);
  const Bytes secret = to_bytes("a disk key that survives kernel updates");
  auto sealed = tpm().seal_authorized(authority.public_area, ref, secret);
  ASSERT_TRUE(sealed) << sealed.error().message;
  auto blob = tpm::SealedBlob::parse(sealed->serialize());
  ASSERT_TRUE(blob) << blob.error().message;
  ASSERT_TRUE(blob->authorized());
  EXPECT_EQ(blob->policy_ref, ref);
  EXPECT_EQ(tpm().unseal(*blob).error().code, ErrorCode::kInvalidArgument);

  const auto before = approve_current(kBoot, authority, ref);
  auto out = tpm().unseal_authorized(*blob, for_tpm(before));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);

  extend(16);  // a kernel update: the device boots into new values
  auto stale = tpm().unseal_authorized(*blob, for_tpm(before));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kPolicyViolation) << stale.error().message;
  EXPECT_NE(stale.error().message.find("not the approved ones"), std::string::npos);

  const auto after = approve_current(kBoot, authority, ref);
  out = tpm().unseal_authorized(*blob, for_tpm(after));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);

  auto foreign = tpm().unseal_authorized(*blob, for_tpm(approve_current(kBoot, other, ref)));
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, ErrorCode::kBadSignature) << foreign.error().message;

  tpm::PolicyApproval forged = for_tpm(after);
  forged.signature.back() ^= 0x01;  // last byte of s
  auto refused = tpm().unseal_authorized(*blob, forged);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kBadSignature) << refused.error().message;

  // The issuer moved to epoch 2 and the agent resealed: approvals of epoch 1 are withdrawn.
  auto epoch2 = tpm().reseal(*blob, for_tpm(after), authority.public_area, tp::epoch_policy_ref(2));
  ASSERT_TRUE(epoch2) << epoch2.error().message;
  EXPECT_EQ(epoch2->policy_ref, tp::epoch_policy_ref(2));
  auto withdrawn = tpm().unseal_authorized(*epoch2, for_tpm(after));
  ASSERT_FALSE(withdrawn);
  EXPECT_EQ(withdrawn.error().code, ErrorCode::kPolicyViolation);
  out = tpm().unseal_authorized(
      *epoch2, for_tpm(approve_current(kBoot, authority, tp::epoch_policy_ref(2))));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);
}

TEST_F(TpmSealing, RaisingTheSealCounterWithdrawsEveryApprovalOfItsOldValue) {
  Authority authority;
  auto counter = tpm().define_seal_counter();
  ASSERT_TRUE(counter) << counter.error().message;
  EXPECT_EQ(counter->value, 1U);
  EXPECT_EQ(tpm().define_seal_counter().error().code, ErrorCode::kAlreadyExists);
  const Bytes ref = tp::epoch_policy_ref(1);
  const Bytes secret = to_bytes("rollback-protected");
  auto blob = tpm().seal_authorized(authority.public_area, ref, secret);
  ASSERT_TRUE(blob) << blob.error().message;

  // Unsealing proves the TPM's PolicyPCR+PolicyNV digest equals approved_policy_digest().
  const auto old = for_tpm(approve_current(kBoot, authority, ref, *counter));
  auto out = tpm().unseal_authorized(*blob, old);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);

  auto raised = tpm().increment_seal_counter();
  ASSERT_TRUE(raised) << raised.error().message;
  EXPECT_EQ(raised->value, 2U);
  EXPECT_EQ(raised->name, counter->name);  // the Name is fixed once written
  auto withdrawn = tpm().unseal_authorized(*blob, old);
  ASSERT_FALSE(withdrawn);
  EXPECT_EQ(withdrawn.error().code, ErrorCode::kPolicyViolation) << withdrawn.error().message;
  EXPECT_NE(withdrawn.error().message.find("withdrawn"), std::string::npos);

  out = tpm().unseal_authorized(*blob, for_tpm(approve_current(kBoot, authority, ref, *raised)));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);
}

TEST_F(TpmSealing, AVersionOneBlobStillUnsealsAndMigratesToVersionTwo) {
  Authority authority;
  const Bytes secret = to_bytes("sealed before PolicyAuthorize");
  auto v1 = tpm().seal(kBoot, secret);
  ASSERT_TRUE(v1) << v1.error().message;
  auto parsed = tpm::SealedBlob::parse(v1->serialize());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->version, 1);
  auto out = tpm().unseal(*parsed);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);

  const Bytes ref = tp::epoch_policy_ref(1);
  auto v2 = tpm().reseal(*parsed, authority.public_area, ref);
  ASSERT_TRUE(v2) << v2.error().message;
  auto migrated = tpm::SealedBlob::parse(v2->serialize());
  ASSERT_TRUE(migrated) << migrated.error().message;
  EXPECT_EQ(migrated->version, 2);
  extend(16);  // the migrated secret survives the update the v1 blob would not
  EXPECT_EQ(tpm().unseal(*parsed).error().code, ErrorCode::kPolicyViolation);
  out = tpm().unseal_authorized(*migrated, for_tpm(approve_current(kBoot, authority, ref)));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(view_bytes(*out), secret);

  auto late = tpm().reseal(*parsed, authority.public_area, ref);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kPolicyViolation) << late.error().message;
}

}  // namespace
}  // namespace warden::test
