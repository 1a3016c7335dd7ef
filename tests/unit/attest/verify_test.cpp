// attest/verify without a TPM: what a policy demands of the quote, the stored IMA state, and
// evidence that fails before any quote is checked (tests/integration/attest/verify_test.cpp has
// the quotes).
#include "attest/verify/verify.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace warden::attest::verify {
namespace {

bool has_refusal(const VerifiedEvidence& out, std::string_view code, std::string_view subject) {
  return std::any_of(out.refusals.begin(), out.refusals.end(), [&](const protocol::Reason& r) {
    return r.code == code && r.subject == subject;
  });
}

TEST(VerifyExpectations, NamedPcrsInTheirBankAndThePcrsBootRulesRead) {
  auto policy = policy::parse_policy(
      "version = \"v\"\n[boot]\nsecure_boot = \"enabled\"\nallowed_applications = [\"" +
      std::string(64, 'a') + "\"]\n[pcrs.sha256]\n0 = \"" + std::string(64, '0') +
      "\"\n[pcrs.sha1]\n2 = \"" + std::string(40, '0') + "\"\n");
  ASSERT_TRUE(policy) << policy.error().message;
  const auto e = expectations(*policy);
  ASSERT_EQ(e.pcrs.size(), 4U);
  auto find = [&](std::optional<TpmAlg> bank, unsigned index) {
    return std::find_if(e.pcrs.begin(), e.pcrs.end(), [&](const RequiredPcr& p) {
             return p.bank == bank && p.index == index;
           }) != e.pcrs.end();
  };
  EXPECT_TRUE(find(TpmAlg::kSha256, 0));
  EXPECT_TRUE(find(TpmAlg::kSha1, 2));
  EXPECT_TRUE(find(std::nullopt, 7));
  EXPECT_TRUE(find(std::nullopt, 4));

  auto plain = policy::parse_policy("version = \"v\"\n");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_TRUE(expectations(*plain).pcrs.empty());
}

TEST(VerifyImaState, RoundTripsAndRefusesATruncatedState) {
  PcrValues pcrs;
  pcrs.init_bank(TpmAlg::kSha256);
  pcrs.init_bank(TpmAlg::kSha1);
  ASSERT_TRUE(pcrs.extend(TpmAlg::kSha256, 10, Bytes(32, 0x01)));
  const Bytes state = encode_ima_state(pcrs);
  auto back = decode_ima_state(state);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, pcrs);
  EXPECT_FALSE(decode_ima_state(ByteSpan(state).first(state.size() - 1)));
}

protocol::AttestRequest garbage_request() {
  protocol::AttestRequest r;
  r.nonce = Bytes(32, 7);
  r.pcr_selection = "sha256:0,1,10";
  r.quote = {Bytes{0xff, 0x54, 0x43, 0x47}, Bytes{0x00}};
  return r;
}

TEST(Verify, EvidenceWithoutAValidQuoteReturnsNothingAndSaysWhy) {
  const quote::PublicArea ak;
  auto r = garbage_request();
  r.ima = protocol::ImaLog{0, Bytes{}, protocol::ImaFormat::kBinary};
  auto policy = policy::parse_policy("version = \"v\"\n[boot]\nsecure_boot = \"enabled\"\n");
  ASSERT_TRUE(policy);
  DeviceRecord device;
  device.ak = &ak;
  auto out = verify(r, device, expectations(*policy));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_FALSE(out->signed_by_ak);
  EXPECT_FALSE(out->quote_verified);
  EXPECT_TRUE(std::any_of(out->refusals.begin(), out->refusals.end(),
                          [](const protocol::Reason& x) { return x.subject == "quote"; }));
  // Checked whatever the quote: the policy's secure_boot rule needs PCR 7.
  EXPECT_TRUE(has_refusal(*out, "pcr_selection_mismatch", "PCR 7"));
  EXPECT_TRUE(out->pcrs.banks().empty());
  EXPECT_FALSE(out->boot_log);
  EXPECT_FALSE(out->ima_state);
  EXPECT_TRUE(out->ima_entries.empty());
  EXPECT_FALSE(out->bound_key);
  EXPECT_FALSE(out->key_refusals.empty());
}

TEST(Verify, ACorruptDeviceRecordIsAnErrorNotARefusal) {
  const quote::PublicArea ak;
  auto r = garbage_request();
  EXPECT_EQ(verify(r, {}, {}).error().code, ErrorCode::kInternal);  // no AK
  r.ima = protocol::ImaLog{5, Bytes{}, protocol::ImaFormat::kBinary};
  const Bytes corrupt{0x00, 0x0b, 0x01};
  auto out = verify(r, {.ak = &ak, .reset_count = 1, .ima_entries = 5, .ima_state = corrupt}, {});
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("stored IMA state"), std::string::npos) << out.error().message;
}

}  // namespace
}  // namespace warden::attest::verify
