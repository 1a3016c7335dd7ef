// The foundation's check: tpm2-tss (not tpm2-tools) reads the TPM manufacturer and the EK
// certificate swtpm_setup provisioned.
#include <gtest/gtest.h>

#include "platform/base/file.h"
#include "platform/tpm/tpm.h"
#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

class TpmFoundation : public SwtpmTest {};

TEST_F(TpmFoundation, ReadsManufacturerAndEkCertificateThroughTss) {
  tpm::Tpm tpm(tpm_->tcti());
  auto info = tpm.info();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->manufacturer, "IBM");
  EXPECT_FALSE(info->vendor.empty());
  ASSERT_FALSE(info->pcr_banks.empty());
  EXPECT_NE(std::find(info->pcr_banks.begin(), info->pcr_banks.end(), TpmAlg::kSha256),
            info->pcr_banks.end());
  EXPECT_NE(std::find(info->curves.begin(), info->curves.end(), 0x0003), info->curves.end());

  auto ek = tpm.endorsement_key();
  ASSERT_TRUE(ek) << ek.error().message;
  EXPECT_EQ(ek->cert_index, 0x01C00002U);
  EXPECT_EQ(ek->ek_template, tpm::EkTemplate::kRsa2048L1);
  auto expected = read_file(tpm_->ek_cert_dir() / "ek-rsa2048.crt");
  ASSERT_TRUE(expected) << expected.error().message;
  EXPECT_EQ(ek->certificate, *expected);
  EXPECT_FALSE(ek->public_key_der.empty());
}

TEST(TpmUnreachable, ClosedPortIsAClearUnavailableError) {
  tpm::Tpm tpm("swtpm:host=127.0.0.1,port=" + std::to_string(free_tcp_port()));
  auto info = tpm.info();
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(info.error().message.find("connect to TPM"), std::string::npos) << info.error().message;
  EXPECT_NE(info.error().tss_rc, 0U);
}

}  // namespace
}  // namespace warden::test
