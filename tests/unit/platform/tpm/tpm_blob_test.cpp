// Blob formats of platform/tpm, without a TPM.
#include <gtest/gtest.h>

#include "platform/tpm/tools_format.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {
namespace {

TEST(AkBlob, RoundTripsAndRejectsDamage) {
  AkBlob ak;
  ak.parent = EkTemplate::kEccP384H3;
  ak.public_area = {0x00, 0x02, 0x00, 0x23};
  ak.private_area = {0x00, 0x01, 0x55};
  Bytes data = ak.serialize();
  auto parsed = AkBlob::parse(data);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->parent, ak.parent);
  EXPECT_EQ(parsed->public_area, ak.public_area);
  EXPECT_EQ(parsed->private_area, ak.private_area);

  Bytes truncated(data.begin(), data.end() - 1);
  EXPECT_EQ(AkBlob::parse(truncated).error().code, ErrorCode::kMalformed);
  Bytes bad_magic = data;
  bad_magic[0] = 'X';
  EXPECT_EQ(AkBlob::parse(bad_magic).error().code, ErrorCode::kMalformed);
  Bytes bad_version = data;
  bad_version[3] = 2;
  EXPECT_EQ(AkBlob::parse(bad_version).error().code, ErrorCode::kUnsupported);
  Bytes trailing = data;
  trailing.push_back(0);
  EXPECT_FALSE(AkBlob::parse(trailing));
}

TEST(SealedBlob, RoundTripsTheSelection) {
  SealedBlob blob;
  blob.selection = PcrSelection::parse("sha256:7,16+sha1:0").value();
  blob.public_area = {1, 2, 3};
  blob.private_area = {4, 5};
  auto parsed = SealedBlob::parse(blob.serialize());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->selection, blob.selection);
  EXPECT_EQ(parsed->public_area, blob.public_area);
  EXPECT_EQ(parsed->private_area, blob.private_area);
  EXPECT_FALSE(SealedBlob::parse(Bytes{'W', 'S', 'E', 'A', 'L', 1, 0, 9}));
}

TEST(SealedBlob, VersionTwoCarriesTheAuthorityAndPolicyRef) {
  SealedBlob blob;
  blob.version = 2;
  blob.authority_public = {0, 2, 0, 0x23};
  blob.policy_ref = {'e', 1};
  blob.public_area = {1, 2, 3};
  blob.private_area = {4, 5};
  const Bytes data = blob.serialize();
  EXPECT_EQ(data, (Bytes{'W', 'S', 'E', 'A', 'L', 2, 0, 4, 0, 2, 0, 0x23, 0,
                         2,   'e', 1,   0,   3,   1, 2, 3, 0, 2, 4, 5}));
  auto parsed = SealedBlob::parse(data);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->authorized());
  EXPECT_EQ(parsed->authority_public, blob.authority_public);
  EXPECT_EQ(parsed->policy_ref, blob.policy_ref);
  EXPECT_EQ(parsed->public_area, blob.public_area);
  EXPECT_EQ(parsed->private_area, blob.private_area);
  EXPECT_TRUE(parsed->selection.empty());

  Bytes long_ref = {'W', 'S', 'E', 'A', 'L', 2, 0, 0, 0, 65};
  long_ref.resize(long_ref.size() + 65 + 4, 0);
  EXPECT_EQ(SealedBlob::parse(long_ref).error().code, ErrorCode::kMalformed);
  Bytes v3 = data;
  v3[5] = 3;
  EXPECT_EQ(SealedBlob::parse(v3).error().code, ErrorCode::kUnsupported);
}

TEST(Tpm2ToolsPcrsFile, HasTheLayoutTpm2QuoteWrites) {
  // Layout observed from tpm2_quote -o (tpm2-tools 5.4) for sha256:0-10: 132-byte
  // TPML_PCR_SELECTION, u32 count, 532-byte TPML_DIGEST per 8 digests.
  auto selection = PcrSelection::parse("sha256:0-10").value();
  std::vector<PcrValue> values;
  for (unsigned i = 0; i <= 10; ++i) values.push_back({TpmAlg::kSha256, i, Bytes(32, 0)});
  Bytes file = tpm2_tools_pcrs_file(selection, values);
  ASSERT_EQ(file.size(), 1200U);
  EXPECT_EQ(Bytes(file.begin(), file.begin() + 12),
            (Bytes{1, 0, 0, 0, 0x0b, 0, 3, 0xff, 0x07, 0, 0, 0}));
  EXPECT_EQ(Bytes(file.begin() + 132, file.begin() + 142),
            (Bytes{2, 0, 0, 0, 8, 0, 0, 0, 0x20, 0}));
}

}  // namespace
}  // namespace warden::tpm
