#include <gtest/gtest.h>

#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

class SwtpmFixture : public SwtpmTest {};

TEST_F(SwtpmFixture, ServesTpm2ToolsAndHoldsEkCertificates) {
  CommandOutput random = run_command({"tpm2_getrandom", "--hex", "8"}, tpm_->tools_env());
  ASSERT_EQ(random.exit_code, 0) << random.out;
  EXPECT_EQ(random.out.size(), 16U);
  CommandOutput nv = run_command({"tpm2_getcap", "handles-nv-index"}, tpm_->tools_env());
  ASSERT_EQ(nv.exit_code, 0) << nv.out;
  EXPECT_NE(nv.out.find("0x1C00002"), std::string::npos) << nv.out;
  EXPECT_NE(nv.out.find("0x1C00016"), std::string::npos) << nv.out;
  EXPECT_NE(nv.out.find("0x1C08000"), std::string::npos) << nv.out;
}

TEST_F(SwtpmFixture, EkCertificateChainsToTheTestsOwnCa) {
  ASSERT_TRUE(std::filesystem::exists(tpm_->ca_cert()));
  EXPECT_EQ(tpm_->ca_cert().string().rfind(tpm_->dir().string(), 0), 0U);
  // The EK certificate file is DER; openssl verify needs PEM, so convert first.
  CommandOutput pem = run_command({"openssl", "x509", "-inform", "der", "-in",
                                   (tpm_->ek_cert_dir() / "ek-rsa2048.crt").string(), "-out",
                                   (tpm_->dir() / "ek.pem").string()});
  ASSERT_EQ(pem.exit_code, 0) << pem.out;
  CommandOutput verify =
      run_command({"openssl", "verify", "-CAfile", tpm_->ca_cert().string(), "-untrusted",
                   tpm_->issuer_cert().string(), (tpm_->dir() / "ek.pem").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
}

TEST_F(SwtpmFixture, KillStopsTheTpmAndRestartKeepsItsState) {
  tpm_->kill();
  EXPECT_FALSE(tpm_->running());
  CommandOutput down =
      run_command({"tpm2_getrandom", "8"}, tpm_->tools_env(), std::chrono::seconds(20));
  EXPECT_NE(down.exit_code, 0);
  tpm_->restart();
  CommandOutput nv = run_command({"tpm2_getcap", "handles-nv-index"}, tpm_->tools_env());
  ASSERT_EQ(nv.exit_code, 0) << nv.out;
  EXPECT_NE(nv.out.find("0x1C00002"), std::string::npos);
}

}  // namespace
}  // namespace warden::test
