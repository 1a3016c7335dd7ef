// Credential activation and quotes against a private swtpm, driven with tpm2-tools
// (TPM-NOTES Appendix C): our MakeCredential output is recovered by tpm2_activatecredential, and
// tpm2_quote output verifies with our verifier (altered inputs fail with the right reason).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "attest/credential/credential.h"
#include "attest/quote/quote.h"
#include "platform/base/clock.h"
#include "platform/base/encoding.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace warden {
namespace {

namespace q = attest::quote;

class EvidenceTpmTest : public test::SwtpmTest {
 protected:
  // Runs a shell snippet in the test's directory with TPM2TOOLS_TCTI set; fails the test on error.
  std::string sh(const std::string& script) {
    auto r =
        test::run_command({"/bin/sh", "-c", "set -e; cd '" + tpm_->dir().string() + "'; " + script},
                          tpm_->tools_env());
    EXPECT_EQ(r.exit_code, 0) << script << "\n" << r.out;
    return r.out;
  }
  Bytes read(const std::string& name) {
    std::ifstream in(tpm_->dir() / name, std::ios::binary);
    return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  void write(const std::string& name, ByteSpan data) {
    std::ofstream out(tpm_->dir() / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
  }

  void activate_with(const std::string& ek_alg, const std::string& session_hash = "sha256") {
    sh("tpm2_createek -G " + ek_alg + " -c ek.ctx -u ek.pub >/dev/null");
    sh("tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name -f tpmt "
       ">/dev/null; "
       "tpm2_flushcontext -t");
    auto ek = q::parse_public2b(read("ek.pub"));
    ASSERT_TRUE(ek) << ek.error().message;
    SystemRandom rng;
    Bytes secret(32);
    rng.fill(secret);
    auto cred = attest::credential::make_credential(*ek, read("ak.name"), secret, rng);
    ASSERT_TRUE(cred) << cred.error().message;
    write("cred.blob", cred->tpm2_tools_file());
    if (session_hash.empty()) {
      // High-range EK (tpm2_createek -G ecc384 sets userWithAuth): a password session works.
      sh("tpm2_activatecredential -c ak.ctx -C ek.ctx -i cred.blob -o out.bin >/dev/null");
    } else {
      sh("tpm2_startauthsession --policy-session -g " + session_hash +
         " -S s.ctx >/dev/null; tpm2_policysecret -S s.ctx -c e >/dev/null; "
         "tpm2_activatecredential -c ak.ctx -C ek.ctx -i cred.blob -o out.bin -P session:s.ctx "
         ">/dev/null; tpm2_flushcontext s.ctx");
    }
    EXPECT_EQ(read("out.bin"), secret);
  }

  // tpm2_pcrread text -> PcrValues.
  attest::PcrValues pcrread(const std::string& spec) {
    const std::string out = sh("tpm2_pcrread " + spec);
    attest::PcrValues v;
    std::istringstream in(out);
    std::string line;
    std::optional<TpmAlg> bank;
    while (std::getline(in, line)) {
      const auto first = line.find_first_not_of(' ');
      const auto colon = line.find(':');
      if (first == std::string::npos || colon == std::string::npos) continue;
      const auto hex = line.find("0x");
      if (hex == std::string::npos) {
        bank = hash_from_name(line.substr(first, colon - first));
        if (bank) v.init_bank(*bank);
      } else if (bank) {
        EXPECT_TRUE(v.set(*bank,
                          static_cast<unsigned>(std::stoul(line.substr(first, colon - first))),
                          *hex_decode(line.substr(hex + 2))));
      }
    }
    return v;
  }
};

TEST_F(EvidenceTpmTest, ActivateCredentialRecoversSecretRsaEk) { activate_with("rsa"); }
TEST_F(EvidenceTpmTest, ActivateCredentialRecoversSecretEccP256Ek) { activate_with("ecc"); }
TEST_F(EvidenceTpmTest, ActivateCredentialRecoversSecretEccP384Ek) { activate_with("ecc384", ""); }

TEST_F(EvidenceTpmTest, ToolsQuotesVerifyAndAlteredOnesFail) {
  sh("tpm2_pcrextend 7:sha256=0707070707070707070707070707070707070707070707070707070707070707");
  sh("tpm2_createek -G rsa -c ek.ctx >/dev/null");
  const std::string nonce_hex = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0";
  const Bytes nonce = *hex_decode(nonce_hex);
  const auto pcrs = pcrread("sha256:0,1,2,3,4,5,6,7,10");
  const auto selection = *PcrSelection::parse("sha256:0,1,2,3,4,5,6,7,10");
  for (const std::string g : {"ecc", "rsa"}) {
    SCOPED_TRACE(g);
    sh("tpm2_createak -C ek.ctx -c ak_" + g + ".ctx -G " + g + " -g sha256 -s " +
       (g == "ecc" ? "ecdsa" : "rsassa") + " -u ak_" + g +
       ".pub -f tpmt >/dev/null; tpm2_flushcontext -t");
    sh("tpm2_quote -c ak_" + g + ".ctx -l sha256:0,1,2,3,4,5,6,7,10 -q " + nonce_hex + " -m q_" +
       g + ".msg -s q_" + g + ".sig -g sha256 >/dev/null; tpm2_flushcontext -t");
    auto ak = q::parse_public(read("ak_" + g + ".pub"));
    ASSERT_TRUE(ak) << ak.error().message;
    ASSERT_TRUE(q::check_ak_attributes(*ak));
    const Bytes msg = read("q_" + g + ".msg");
    const Bytes sig = read("q_" + g + ".sig");
    auto ok = q::verify_quote(*ak, msg, sig, {nonce, selection, &pcrs, true});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_TRUE(ok->attest.clock_info.safe);
    EXPECT_GT(ok->attest.clock_info.clock, 0u);

    Bytes other_nonce = nonce;
    other_nonce[3] ^= 0xff;
    auto r = q::verify_quote(*ak, msg, sig, {other_nonce, selection, &pcrs, true});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kNonceMismatch);

    Bytes bad_sig = sig;
    bad_sig.back() ^= 0x01;
    r = q::verify_quote(*ak, msg, bad_sig, {nonce, selection, &pcrs, true});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kBadSignature);

    auto other_pcrs = pcrs;
    ASSERT_TRUE(other_pcrs.extend(TpmAlg::kSha256, 10, Bytes(32, 9)));
    r = q::verify_quote(*ak, msg, sig, {nonce, selection, &other_pcrs, true});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kPcrDigestMismatch);

    const auto other_sel = *PcrSelection::parse("sha256:0,1,2,3,4,5,6,7");
    r = q::verify_quote(*ak, msg, sig, {nonce, other_sel, &pcrs, true});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kPcrSelectionMismatch);
  }
}

}  // namespace
}  // namespace warden
