// wardenctl tpm ... against a private swtpm, checked with tpm2-tools.
#include <gtest/gtest.h>

#include "platform/base/file.h"
#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

const std::string kWardenctl = std::string(WARDEN_BINARY_DIR) + "/agent/wardenctl";

class WardenctlTpm : public SwtpmTest {
 protected:
  CommandOutput wardenctl(std::vector<std::string> args) {
    std::vector<std::string> argv{kWardenctl, "tpm", "--tcti", tpm_->tcti()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, {});
  }
};

TEST_F(WardenctlTpm, QuoteOutputIsAcceptedByTpm2Checkquote) {
  const auto out = tpm_->dir() / "quote";
  const std::string nonce = "00112233445566778899aabbccddeeff";
  CommandOutput quote =
      wardenctl({"--state", (tpm_->dir() / "state").string(), "quote", "--pcrs",
                 "sha256:0,1,2,3,4,5,6,7,8,9,10", "--nonce", nonce, "--out", out.string()});
  ASSERT_EQ(quote.exit_code, 0) << quote.out;
  auto check = [&](const std::string& q) {
    return run_command({"tpm2_checkquote", "-u", (out / "ak.pub.pem").string(), "-m",
                        (out / "quote.msg").string(), "-s", (out / "quote.sig").string(), "-f",
                        (out / "pcrs").string(), "-g", "sha256", "-q", q},
                       tpm_->tools_env());
  };
  CommandOutput good = check(nonce);
  EXPECT_EQ(good.exit_code, 0) << good.out;
  CommandOutput bad = check("ff112233445566778899aabbccddeeff");
  EXPECT_NE(bad.exit_code, 0) << bad.out;
  EXPECT_TRUE(std::filesystem::exists(tpm_->dir() / "state" / "ak.blob"));
}

TEST_F(WardenctlTpm, InfoEkAndPcrs) {
  CommandOutput info = wardenctl({"info"});
  ASSERT_EQ(info.exit_code, 0) << info.out;
  EXPECT_NE(info.out.find("manufacturer: IBM"), std::string::npos) << info.out;
  CommandOutput ek = wardenctl({"ek"});
  ASSERT_EQ(ek.exit_code, 0) << ek.out;
  EXPECT_NE(ek.out.find("BEGIN PUBLIC KEY"), std::string::npos) << ek.out;
  EXPECT_NE(ek.out.find("BEGIN CERTIFICATE"), std::string::npos) << ek.out;
  CommandOutput pcrs = wardenctl({"pcrs", "--pcrs", "sha256:0,1,2"});
  ASSERT_EQ(pcrs.exit_code, 0) << pcrs.out;
  CommandOutput tools = run_command({"tpm2_pcrread", "sha256:0,1,2"}, tpm_->tools_env());
  ASSERT_EQ(tools.exit_code, 0) << tools.out;
  EXPECT_EQ(pcrs.out, tools.out);
}

TEST_F(WardenctlTpm, SealUnsealAndPcrChange) {
  const auto dir = tpm_->dir();
  ASSERT_TRUE(write_file_atomic(dir / "secret", to_bytes("top secret"), 0600));
  CommandOutput seal = wardenctl({"seal", "--pcrs", "sha256:16", "--in", (dir / "secret").string(),
                                  "--out", (dir / "blob").string()});
  ASSERT_EQ(seal.exit_code, 0) << seal.out;
  CommandOutput unseal =
      wardenctl({"unseal", "--in", (dir / "blob").string(), "--out", (dir / "plain").string()});
  ASSERT_EQ(unseal.exit_code, 0) << unseal.out;
  EXPECT_EQ(read_file(dir / "plain").value(), to_bytes("top secret"));
  ASSERT_EQ(run_command({"tpm2_pcrextend", "16:sha256=" + std::string(64, 'b')}, tpm_->tools_env())
                .exit_code,
            0);
  CommandOutput denied =
      wardenctl({"unseal", "--in", (dir / "blob").string(), "--out", (dir / "plain2").string()});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.out.find("wardenctl: unseal: PCR policy not satisfied"), std::string::npos)
      << denied.out;
}

TEST(WardenctlTpmUnreachable, ReportsTheTcti) {
  const std::string tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(free_tcp_port());
  CommandOutput info = run_command({kWardenctl, "tpm", "--tcti", tcti, "info"}, {});
  EXPECT_NE(info.exit_code, 0);
  EXPECT_NE(info.out.find("wardenctl: connect to TPM via TCTI"), std::string::npos) << info.out;
}

}  // namespace
}  // namespace warden::test
