#include "attest/pcr_values.h"

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::attest {
namespace {

TEST(PcrValues, ExtendIsHashOfOldValueAndDigest) {
  PcrValues v;
  v.init_bank(TpmAlg::kSha256);
  Bytes digest(32, 0xff);
  ASSERT_TRUE(v.extend(TpmAlg::kSha256, 10, digest));
  Bytes concat(64, 0);
  std::fill(concat.begin() + 32, concat.end(), 0xff);
  EXPECT_EQ(*v.get(TpmAlg::kSha256, 10), ossl::sha256(concat));
  EXPECT_FALSE(v.extend(TpmAlg::kSha256, 10, Bytes(20, 0)));
  EXPECT_FALSE(v.extend(TpmAlg::kSha1, 10, Bytes(20, 0)));
  EXPECT_FALSE(v.extend(TpmAlg::kSha256, 24, digest));
}

TEST(PcrValues, CompositeDigestMatchesPolicyPcrVector) {
  // TPM-NOTES appendix A: PolicyPCR sha256:{0,7} over all-zero PCRs; the pcrDigest inside is
  // SHA-256 of 64 zero bytes.
  PcrValues v;
  v.init_bank(TpmAlg::kSha256);
  auto sel = PcrSelection::parse("sha256:0,7");
  ASSERT_TRUE(sel);
  auto d = pcr_composite_digest(*sel, v, ossl::Hash::kSha256);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, ossl::sha256(Bytes(64, 0)));
  auto missing = PcrSelection::parse("sha1:0");
  EXPECT_EQ(pcr_composite_digest(*missing, v, ossl::Hash::kSha256).error().code,
            ErrorCode::kPcrSelectionMismatch);
}

TEST(PcrValues, FormatsLikeTpm2Pcrread) {
  PcrValues v;
  v.init_bank(TpmAlg::kSha1);
  ASSERT_TRUE(v.set(TpmAlg::kSha1, 3, Bytes(20, 0xab)));
  auto sel = PcrSelection::parse("sha1:3,4");
  EXPECT_EQ(format_pcrs(v, &*sel),
            "sha1:\n  3 : 0xABABABABABABABABABABABABABABABABABABABAB\n"
            "  4 : 0x0000000000000000000000000000000000000000\n");
}

}  // namespace
}  // namespace warden::attest
