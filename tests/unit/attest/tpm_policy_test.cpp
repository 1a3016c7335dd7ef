#include <memory>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "attest/token/signer.h"
#include "attest/tpm_policy/authorized_policy.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::tpm_policy {
namespace {

std::string hex(ByteSpan b) { return hex_encode(b); }

std::shared_ptr<EVP_PKEY> new_key(const char* curve = "P-256") {
  return {EVP_EC_gen(curve), EVP_PKEY_free};
}

struct Authority {
  std::shared_ptr<EVP_PKEY> key = new_key();
  token::EcSigner signer = token::EcSigner::from_key(key).value();
  Bytes public_area = authority_public_area(key.get()).value();
};

PcrValues values_with(unsigned index, std::uint8_t fill) {
  PcrValues v;
  v.init_bank(TpmAlg::kSha256);
  EXPECT_TRUE(v.set(TpmAlg::kSha256, index, Bytes(32, fill)));
  return v;
}

TEST(PolicyPcrDigest, MatchesTheVectorsVerifiedOnSwtpm) {
  // TPM-NOTES appendix A: all-zero SHA-256 PCRs, computed by the TPM (trial PolicyPCR).
  PcrValues zeros;
  zeros.init_bank(TpmAlg::kSha256);
  auto sel07 = PcrSelection::parse("sha256:0,7").value();
  EXPECT_EQ(hex(marshal_pcr_selection(sel07)), "00000001000b03810000");
  auto d07 = policy_pcr_digest(sel07, selected_values(sel07, zeros).value());
  ASSERT_TRUE(d07) << d07.error().message;
  EXPECT_EQ(hex(*d07), "02e3642b3e29eeccfffd8031c00a6f0a0febe5ceea2f6ef6b0322fe81598cf31");
  auto sel0_7 = PcrSelection::parse("sha256:0-7").value();
  EXPECT_EQ(hex(policy_pcr_digest(sel0_7, selected_values(sel0_7, zeros).value()).value()),
            "9a72c2e06a93c453a86efb47532e9c7a91dcab018e675919910c58d6a1a5aa78");
}

TEST(PolicyPcrDigest, RefusesValuesThatDoNotFitTheSelection) {
  auto sel = PcrSelection::parse("sha256:0,7").value();
  EXPECT_EQ(policy_pcr_digest(sel, {Bytes(32, 0)}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(policy_pcr_digest(sel, {Bytes(32, 0), Bytes(20, 0)}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_FALSE(policy_pcr_digest(PcrSelection{}, {}));
  PcrValues sha1_only;
  sha1_only.init_bank(TpmAlg::kSha1);
  EXPECT_FALSE(selected_values(sel, sha1_only));
}

TEST(PolicyAuthorizeDigest, HashesTheKeyNameThenThePolicyRef) {
  Bytes name = {0x00, 0x0b};
  name.resize(34, 0xab);
  ByteWriter inner;
  inner.bytes(Bytes(32, 0)).u32be(0x16A).bytes(name);
  const Bytes step1 = ossl::sha256(inner.data());
  // An empty policyRef still gets the outer hash (TPM 2.0 Part 3, 23.16).
  EXPECT_EQ(policy_authorize_digest(name, {}).value(), ossl::sha256(step1));
  const Bytes ref = epoch_policy_ref(3);
  Bytes outer = step1;
  outer.insert(outer.end(), ref.begin(), ref.end());
  EXPECT_EQ(policy_authorize_digest(name, ref).value(), ossl::sha256(outer));
  EXPECT_FALSE(policy_authorize_digest(Bytes(20, 0), ref));
  EXPECT_FALSE(policy_authorize_digest(name, Bytes(65, 0)));
}

TEST(PolicyNvDigest, ExtendsThePriorDigestWithTheOperandArgsAndTheName) {
  const Bytes prior(32, 0x11);
  Bytes name = {0x00, 0x0b};
  name.resize(34, 0xcd);
  ByteWriter operand;
  operand.u64be(7);
  ByteWriter args;
  args.bytes(operand.data()).u16be(0).u16be(kEoEq);
  ByteWriter all;
  all.bytes(prior).u32be(0x149).bytes(ossl::sha256(args.data())).bytes(name);
  EXPECT_EQ(policy_nv_digest(prior, name, operand.data(), 0, kEoEq).value(),
            ossl::sha256(all.data()));
  auto sel = PcrSelection::parse("sha256:16").value();
  const std::vector<Bytes> values = {Bytes(32, 0)};
  const CounterCheck counter{0x01577001, name, 7};
  EXPECT_EQ(approved_policy_digest(sel, values, counter).value(),
            policy_nv_digest(policy_pcr_digest(sel, values).value(), name, operand.data(), 0, kEoEq)
                .value());
  EXPECT_EQ(approved_policy_digest(sel, values, std::nullopt).value(),
            policy_pcr_digest(sel, values).value());
  EXPECT_FALSE(policy_nv_digest(prior, Bytes(20, 0), operand.data(), 0, kEoEq));
}

TEST(EpochPolicyRef, RoundTripsAndRejectsOtherRefs) {
  EXPECT_EQ(policy_ref_epoch(epoch_policy_ref(0x0102030405060708)), 0x0102030405060708U);
  EXPECT_EQ(policy_ref_epoch(to_bytes("warden-seal")), std::nullopt);
  Bytes other = epoch_policy_ref(1);
  other[0] = 'W';
  EXPECT_EQ(policy_ref_epoch(other), std::nullopt);
}

TEST(AuthorityPublicArea, IsAnEcdsaP256SigningKeyWithASha256Name) {
  Authority a;
  ASSERT_EQ(a.public_area.size(), 2U + 88U);
  // type ECC, nameAlg SHA-256, sign|userWithAuth, empty policy, sym NULL, ECDSA/SHA-256, P-256.
  EXPECT_EQ(hex(ByteSpan(a.public_area).first(24)),
            "00580023000b00040040000000100018000b00030010"
            "0020");
  auto name = authority_name(a.public_area);
  ASSERT_TRUE(name) << name.error().message;
  EXPECT_EQ(name->size(), 34U);
  EXPECT_EQ(ByteSpan(*name).subspan(2).size(), 32U);
  EXPECT_EQ(Bytes(name->begin() + 2, name->end()),
            ossl::sha256(ByteSpan(a.public_area).subspan(2)));
  EXPECT_EQ(authority_public_area(new_key("P-384").get()).error().code,
            ErrorCode::kInvalidArgument);
}

TEST(ApprovedPolicy, RoundTripsAndVerifiesWithItsAuthorityOnly) {
  Authority a;
  Authority other;
  auto sel = PcrSelection::parse("sha256:7,16").value();
  auto approval = approve(sel, values_with(16, 0x42), epoch_policy_ref(2), a.signer);
  ASSERT_TRUE(approval) << approval.error().message;
  auto parsed = ApprovedPolicy::parse(approval->serialize());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->selection, sel);
  EXPECT_EQ(parsed->pcr_values, approval->pcr_values);
  EXPECT_EQ(parsed->pcr_values[1], Bytes(32, 0x42));
  EXPECT_EQ(parsed->policy_ref, epoch_policy_ref(2));
  EXPECT_EQ(parsed->approved_policy, policy_pcr_digest(sel, parsed->pcr_values).value());
  EXPECT_TRUE(verify_approval(*parsed, a.public_area));
  EXPECT_EQ(verify_approval(*parsed, other.public_area).error().code, ErrorCode::kBadSignature);

  ApprovedPolicy tampered = *parsed;
  tampered.signature[10] ^= 1;  // inside r
  EXPECT_EQ(verify_approval(tampered, a.public_area).error().code, ErrorCode::kBadSignature);
  ApprovedPolicy other_ref = *parsed;
  other_ref.policy_ref = epoch_policy_ref(1);
  EXPECT_EQ(verify_approval(other_ref, a.public_area).error().code, ErrorCode::kBadSignature);
}

TEST(ApprovedPolicy, CarriesAWithdrawalCounter) {
  Authority a;
  auto sel = PcrSelection::parse("sha256:16").value();
  Bytes name = {0x00, 0x0b};
  name.resize(34, 0x5a);
  const CounterCheck counter{0x01577001, name, 3};
  auto approval = approve(sel, values_with(16, 9), epoch_policy_ref(1), a.signer, counter);
  ASSERT_TRUE(approval) << approval.error().message;
  const Bytes data = approval->serialize();
  auto parsed = ApprovedPolicy::parse(data);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->counter, counter);
  EXPECT_TRUE(verify_approval(*parsed, a.public_area));
  // The counter value is the last field before policyRef, approvedPolicy and the signature.
  Bytes raised = data;
  raised[data.size() - 72 - 2 - 32 - 2 - 19 - 1] = 4;
  EXPECT_EQ(ApprovedPolicy::parse(raised).error().code, ErrorCode::kMalformed);
  Bytes not_nv = data;
  not_nv[6 + 12 + 2 + 34 + 1] = 0x81;  // index 0x81577001: a persistent handle
  EXPECT_NE(ApprovedPolicy::parse(not_nv).error().message.find("NV index"), std::string::npos);
}

TEST(ApprovedPolicy, ParseRejectsDamageWithClearErrors) {
  Authority a;
  auto sel = PcrSelection::parse("sha256:16").value();
  const Bytes good = approve(sel, values_with(16, 1), epoch_policy_ref(1), a.signer)->serialize();
  // Layout: "WAPOL" 1 | 00 0a TPML(10) | 00 01 | 00 20 value(32) | 00 (no counter) |
  // 00 13 ref(19) | 00 20 d(32) | 00 48 sig.
  constexpr std::size_t kValueAt = 6 + 12 + 2 + 2;
  ASSERT_TRUE(ApprovedPolicy::parse(good));

  Bytes changed_value = good;
  changed_value[kValueAt] ^= 1;
  auto mismatch = ApprovedPolicy::parse(changed_value);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, ErrorCode::kMalformed);
  EXPECT_NE(mismatch.error().message.find("not the PolicyPCR (and PolicyNV) digest"),
            std::string::npos);

  Bytes truncated(good.begin(), good.end() - 1);
  EXPECT_EQ(ApprovedPolicy::parse(truncated).error().code, ErrorCode::kMalformed);
  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(ApprovedPolicy::parse(trailing));
  Bytes version = good;
  version[5] = 2;
  EXPECT_EQ(ApprovedPolicy::parse(version).error().code, ErrorCode::kUnsupported);
  Bytes count = good;
  count[kValueAt - 3] = 2;
  EXPECT_NE(ApprovedPolicy::parse(count).error().message.find("value count"), std::string::npos);
  Bytes no_pcrs = good;
  no_pcrs[6 + 2 + 4 + 2 + 1 + 2] = 0;  // the pcrSelect byte holding PCR 16
  EXPECT_NE(ApprovedPolicy::parse(no_pcrs).error().message.find("selects no PCR"),
            std::string::npos);
  Bytes rsa_sig = good;
  const std::size_t sig_at = good.size() - 72;
  rsa_sig[sig_at + 1] = 0x14;  // RSASSA
  EXPECT_NE(ApprovedPolicy::parse(rsa_sig).error().message.find("expected ECDSA"),
            std::string::npos);
  EXPECT_EQ(ApprovedPolicy::parse(Bytes(kMaxApprovedPolicySize + 1, 0)).error().code,
            ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace warden::attest::tpm_policy
