#include "attest/quote/quote.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::attest::quote {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = fs::path(WARDEN_TESTDATA_DIR) / "quote";

// Fixtures: tests/data/quote, made once on swtpm with tpm2-tools 5.4 (see README there).
Bytes read_all(const std::string& name) {
  std::ifstream in(kDir / name, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const char* kNonceHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

PcrValues fixture_pcrs() {
  PcrValues v;
  v.init_bank(TpmAlg::kSha256);
  EXPECT_TRUE(
      v.set(TpmAlg::kSha256, 0,
            *hex_decode("5C85955F709283ECCE2B74F1B1552918819F390911816E7BB466805A38AB87F3")));
  EXPECT_TRUE(
      v.set(TpmAlg::kSha256, 7,
            *hex_decode("DAF6D3E6AD66990ABA2FAE6E6C61F18B2D48F0CA6C29D2CFA19AB41F5A865231")));
  EXPECT_TRUE(
      v.set(TpmAlg::kSha256, 10,
            *hex_decode("9BF1E41BE80C3A75656B076F259CCB6823B32F43DD6F0438AFE0C973AD13E185")));
  return v;
}

struct Case {
  const char* key;
  const char* msg;
  const char* sig;
};
const Case kCases[] = {{"ak_ecc.pub", "quote_ecc.msg", "quote_ecc.sig"},
                       {"ak_rsa.pub", "quote_rsa.msg", "quote_rsa.sig"},
                       {"ak_pss.pub", "quote_pss.msg", "quote_pss.sig"}};

class QuoteFixture : public ::testing::Test {
 protected:
  Bytes nonce = *hex_decode(kNonceHex);
  PcrValues pcrs = fixture_pcrs();
  PcrSelection selection = *PcrSelection::parse("sha256:0,1,2,3,4,5,6,7,10");
  QuoteExpectations expect() const { return {nonce, selection, &pcrs, true}; }
};

TEST_F(QuoteFixture, ToolsQuotesVerify) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.key);
    auto ak = parse_public(read_all(c.key));
    ASSERT_TRUE(ak) << ak.error().message;
    EXPECT_TRUE(check_ak_attributes(*ak));
    auto v = verify_quote(*ak, read_all(c.msg), read_all(c.sig), expect());
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_TRUE(v->attest.clock_info.safe);
    EXPECT_GT(v->attest.clock_info.clock, 0u);
    EXPECT_NE(v->attest.firmware_version, 0u);
    EXPECT_EQ(v->attest.qualified_signer.size(), 34u);
  }
}

TEST_F(QuoteFixture, OtherNonceIsNonceMismatch) {
  nonce[0] ^= 1;
  auto ak = parse_public(read_all("ak_ecc.pub"));
  auto v = verify_quote(*ak, read_all("quote_ecc.msg"), read_all("quote_ecc.sig"), expect());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kNonceMismatch) << v.error().message;
}

TEST_F(QuoteFixture, FlippedSignatureIsBadSignature) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.key);
    auto ak = parse_public(read_all(c.key));
    Bytes sig = read_all(c.sig);
    sig[sig.size() - 5] ^= 0x40;
    auto v = verify_quote(*ak, read_all(c.msg), sig, expect());
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, ErrorCode::kBadSignature) << v.error().message;
    Bytes msg = read_all(c.msg);
    msg[20] ^= 1;
    v = verify_quote(*ak, msg, read_all(c.sig), expect());
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, ErrorCode::kBadSignature);
  }
}

TEST_F(QuoteFixture, WrongKeyIsBadSignature) {
  auto other = parse_public(read_all("ak_rsa.pub"));
  auto sig = read_all("quote_pss.sig");
  auto ak = parse_public(read_all("ak_pss.pub"));
  // the RSASSA AK cannot verify the PSS AK's quote (scheme check) ...
  auto v = verify_quote(*other, read_all("quote_pss.msg"), sig, expect());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kAlgorithmNotAllowed);
  // ... and a NULL-scheme copy of it fails on the signature itself
  PublicArea unrestricted = *other;
  unrestricted.scheme = kAlgNull;
  v = verify_quote(unrestricted, read_all("quote_pss.msg"), sig, expect());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kBadSignature);
}

TEST_F(QuoteFixture, DifferentPcrValuesArePcrDigestMismatch) {
  ASSERT_TRUE(pcrs.extend(TpmAlg::kSha256, 10, Bytes(32, 1)));
  auto ak = parse_public(read_all("ak_ecc.pub"));
  auto v = verify_quote(*ak, read_all("quote_ecc.msg"), read_all("quote_ecc.sig"), expect());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kPcrDigestMismatch) << v.error().message;
}

TEST_F(QuoteFixture, DifferentSelectionIsPcrSelectionMismatch) {
  selection = *PcrSelection::parse("sha256:0,1,2,3,4,5,6,7");
  auto ak = parse_public(read_all("ak_rsa.pub"));
  auto v = verify_quote(*ak, read_all("quote_rsa.msg"), read_all("quote_rsa.sig"), expect());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kPcrSelectionMismatch) << v.error().message;
  EXPECT_NE(v.error().message.find("sha256:0"), std::string::npos);
}

TEST(QuoteTest, ParsesHeaderFields) {
  auto a = parse_attest(read_all("quote_ecc.msg"));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->magic, kTpmGeneratedValue);
  EXPECT_EQ(a->type, kStAttestQuote);
  EXPECT_EQ(hex_encode(a->extra_data), kNonceHex);
  EXPECT_EQ(a->pcr_selection.to_string().substr(0, 7), "sha256:");
  EXPECT_EQ(a->pcr_digest.size(), 32u);
}

TEST(QuoteTest, CertifyOfBindingKeyVerifies) {
  auto ak = parse_public(read_all("ak_ecc.pub"));
  auto bind = parse_public2b(read_all("bind.pub"));
  ASSERT_TRUE(bind) << bind.error().message;
  EXPECT_TRUE(check_binding_key_attributes(*bind));
  auto st = check_ak_attributes(*bind);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("missing restricted"), std::string::npos) << st.error().message;
  // tpm2_certify 5.4 always sends qualifyingData 00ff55aa.
  const Bytes nonce = *hex_decode("00ff55aa");
  auto v = verify_certify(*ak, read_all("certify.msg"), read_all("certify.sig"), nonce, *bind);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->attest.certified_name, *object_name(*bind));
  // certifying a different key's public area fails
  auto other = parse_public(read_all("ak_rsa.pub"));
  auto w = verify_certify(*ak, read_all("certify.msg"), read_all("certify.sig"), nonce, *other);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kProofMismatch);
  auto n = verify_certify(*ak, read_all("certify.msg"), read_all("certify.sig"), Bytes{1}, *bind);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kNonceMismatch);
}

TEST(QuoteTest, AkAttributesRejectDecrypt) {
  auto ak = parse_public(read_all("ak_ecc.pub"));
  ak->attributes |= kDecrypt;
  auto st = check_ak_attributes(*ak);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kPolicyViolation);
  EXPECT_NE(st.error().message.find("forbidden decrypt"), std::string::npos);
}

TEST(QuoteTest, NameMatchesToolsName) {
  // tpm2_createak -n wrote the Name; object_name must agree.
  for (const char* k : {"ecc", "rsa", "pss"}) {
    auto ak = parse_public(read_all(std::string("ak_") + k + ".pub"));
    ASSERT_TRUE(ak);
    EXPECT_EQ(*object_name(*ak), read_all(std::string("ak_") + k + ".name")) << k;
  }
}

TEST(QuoteTest, TruncationsNeverCrash) {
  for (const char* f : {"quote_ecc.msg", "quote_rsa.sig", "quote_ecc.sig", "ak_ecc.pub",
                        "ak_rsa.pub", "bind.pub", "certify.msg"}) {
    const Bytes full = read_all(f);
    for (std::size_t n = 0; n < full.size(); ++n) {
      ByteSpan cut(full.data(), n);
      auto a = parse_attest(cut);
      auto s = parse_signature(cut);
      auto p = parse_public(cut);
      auto p2 = parse_public2b(cut);
      if (a) {
        ADD_FAILURE() << f << " truncated to " << n << " parsed as TPMS_ATTEST";
      }
      if (!a) {
        EXPECT_FALSE(a.error().message.empty());
      }
      (void)s;
      (void)p;
      (void)p2;
    }
  }
}

}  // namespace
}  // namespace warden::attest::quote
