#include <algorithm>
#include <cctype>

#include <gtest/gtest.h>

#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/state_poller.h"
#include "platform/tpm/tools_format.h"
#include "platform/tpm/tpm.h"
#include "tests/support/swtpm.h"

namespace warden::test {
namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

void write(const std::filesystem::path& path, ByteSpan data) {
  ASSERT_TRUE(write_file_atomic(path, data, 0644));
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  write(path, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

class TpmOperations : public SwtpmTest {
 protected:
  tpm::Tpm tpm() const { return tpm::Tpm(tpm_->tcti()); }

  /// Writes quote files and runs tpm2_checkquote with `nonce_hex`.
  CommandOutput checkquote(const tpm::AkBlob& ak, const tpm::Quote& quote,
                           const PcrSelection& selection, const std::string& nonce_hex) {
    auto values = tpm().read_pcrs(selection);
    EXPECT_TRUE(values);
    const auto dir = tpm_->dir();
    write(dir / "quote.msg", quote.attest);
    write(dir / "quote.sig", quote.signature);
    write(dir / "quote.pcrs", tpm::tpm2_tools_pcrs_file(selection, *values));
    write_text(dir / "ak.pem", ak.public_key_pem().value());
    return run_command({"tpm2_checkquote", "-u", (dir / "ak.pem").string(), "-m",
                        (dir / "quote.msg").string(), "-s", (dir / "quote.sig").string(), "-f",
                        (dir / "quote.pcrs").string(), "-g", "sha256", "-q", nonce_hex},
                       tpm_->tools_env());
  }
};

TEST_F(TpmOperations, RandomReturnsTheRequestedLength) {
  auto bytes = tpm().random(100);
  ASSERT_TRUE(bytes) << bytes.error().message;
  EXPECT_EQ(bytes->size(), 100U);
  EXPECT_NE(*bytes, Bytes(100, 0));
}

TEST_F(TpmOperations, PcrReadAgreesWithTpm2PcrRead) {
  auto selection = PcrSelection::parse("sha256:0-23");
  ASSERT_TRUE(selection);
  ASSERT_TRUE(tpm().extend_pcr(16, TpmAlg::kSha256, ossl::sha256(to_bytes("warden"))));
  auto values = tpm().read_pcrs(*selection);
  ASSERT_TRUE(values) << values.error().message;
  ASSERT_EQ(values->size(), 24U);  // more than the TPM's 8 digests per TPM2_PCR_Read
  CommandOutput tools = run_command({"tpm2_pcrread", "sha256:all"}, tpm_->tools_env());
  ASSERT_EQ(tools.exit_code, 0) << tools.out;
  for (const auto& v : *values) {
    std::string index = std::to_string(v.index);
    if (index.size() < 2) index += " ";
    const std::string line = "  " + index + ": 0x" + upper(hex_encode(v.digest));
    EXPECT_NE(tools.out.find(line), std::string::npos) << line << "\n" << tools.out;
  }
  EXPECT_NE((*values)[16].digest, Bytes(32, 0));
}

TEST_F(TpmOperations, ActivePcrsListsTheSha256Bank) {
  auto active = tpm().active_pcrs();
  ASSERT_TRUE(active) << active.error().message;
  ASSERT_EQ(active->banks.size(), 1U) << active->to_string();
  EXPECT_EQ(active->banks[0].alg, TpmAlg::kSha256);
  EXPECT_TRUE(active->banks[0].pcrs.all());
}

TEST_F(TpmOperations, QuoteIsAcceptedByTpm2CheckquoteOnlyWithItsNonce) {
  auto ak = tpm().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  auto selection = PcrSelection::parse("sha256:0,1,2,3,4,5,6,7,10,16");
  ASSERT_TRUE(selection);
  const Bytes nonce = tpm().random(32).value();
  auto quote = tpm().quote(*ak, *selection, nonce);
  ASSERT_TRUE(quote) << quote.error().message;
  CommandOutput good = checkquote(*ak, *quote, *selection, hex_encode(nonce));
  EXPECT_EQ(good.exit_code, 0) << good.out;
  Bytes other = nonce;
  other[0] ^= 1;
  CommandOutput bad = checkquote(*ak, *quote, *selection, hex_encode(other));
  EXPECT_NE(bad.exit_code, 0) << bad.out;
}

TEST_F(TpmOperations, RsaAkQuotesToo) {
  auto ak = tpm().create_ak(tpm::AkAlgorithm::kRsa2048);
  ASSERT_TRUE(ak) << ak.error().message;
  auto selection = PcrSelection::parse("sha256:0,1");
  const Bytes nonce(32, 7);
  auto quote = tpm().quote(*ak, *selection, nonce);
  ASSERT_TRUE(quote) << quote.error().message;
  CommandOutput good = checkquote(*ak, *quote, *selection, hex_encode(nonce));
  EXPECT_EQ(good.exit_code, 0) << good.out;
}

TEST_F(TpmOperations, AkReloadsFromTheStateDirAfterARestart) {
  const auto state = tpm_->dir() / "state";
  auto ak = tpm().load_or_create_ak(state);
  ASSERT_TRUE(ak) << ak.error().message;
  ASSERT_TRUE(std::filesystem::exists(state / "ak.blob"));
  tpm_->power_cycle();
  auto again = tpm().load_or_create_ak(state);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->public_area, ak->public_area);
  auto selection = PcrSelection::parse("sha256:0");
  const Bytes nonce(16, 1);
  auto quote = tpm().quote(*again, *selection, nonce);
  ASSERT_TRUE(quote) << quote.error().message;
  CommandOutput good = checkquote(*again, *quote, *selection, hex_encode(nonce));
  EXPECT_EQ(good.exit_code, 0) << good.out;
}

TEST_F(TpmOperations, SealedSecretUnsealsUntilASelectedPcrIsExtended) {
  auto selection = PcrSelection::parse("sha256:16");
  const Bytes secret = to_bytes("a workload key of some bytes");
  auto blob = tpm().seal(*selection, secret);
  ASSERT_TRUE(blob) << blob.error().message;
  auto parsed = tpm::SealedBlob::parse(blob->serialize());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->selection, *selection);
  auto out = tpm().unseal(*parsed);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(Bytes(out->view().begin(), out->view().end()), secret);

  CommandOutput extend =
      run_command({"tpm2_pcrextend", "16:sha256=" + std::string(64, 'a')}, tpm_->tools_env());
  ASSERT_EQ(extend.exit_code, 0) << extend.out;
  auto denied = tpm().unseal(*parsed);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, ErrorCode::kPolicyViolation) << denied.error().message;
  EXPECT_NE(denied.error().message.find("TPM2_Unseal"), std::string::npos);
}

TEST_F(TpmOperations, SealRejectsMoreThan128Bytes) {
  auto blob = tpm().seal(PcrSelection::parse("sha256:16").value(), Bytes(129, 1));
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(TpmOperations, ActivatesACredentialMadeByTpm2Makecredential) {
  auto ek = tpm().endorsement_key();
  ASSERT_TRUE(ek) << ek.error().message;
  auto ak = tpm().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  const auto dir = tpm_->dir();
  write(dir / "ek.tpm2b", ek->public_area);
  const Bytes secret = tpm().random(32).value();
  write(dir / "secret.bin", secret);
  CommandOutput make =
      run_command({"tpm2_makecredential", "-T", "none", "-u", (dir / "ek.tpm2b").string(), "-s",
                   (dir / "secret.bin").string(), "-n", hex_encode(ak->name()), "-o",
                   (dir / "cred.blob").string()},
                  tpm_->tools_env());
  ASSERT_EQ(make.exit_code, 0) << make.out;
  auto file = read_file(dir / "cred.blob");
  ASSERT_TRUE(file);
  // BADCC0DE 00000001 TPM2B_ID_OBJECT TPM2B_ENCRYPTED_SECRET
  ByteReader r(*file);
  ASSERT_TRUE(r.skip(8, "header"));
  auto id = r.tpm2b("id");
  auto enc = r.tpm2b("secret");
  ASSERT_TRUE(id && enc);
  ByteWriter idw;
  idw.tpm2b(*id);
  ByteWriter encw;
  encw.tpm2b(*enc);
  auto recovered = tpm().activate_credential(*ak, std::move(idw).take(), std::move(encw).take());
  ASSERT_TRUE(recovered) << recovered.error().message;
  EXPECT_EQ(Bytes(recovered->view().begin(), recovered->view().end()), secret);
}

TEST_F(TpmOperations, HighRangeP384EkMatchesItsCertificateAndParentsAnAk) {
  auto ek = tpm().endorsement_key(tpm::EkTemplate::kEccP384H3);
  ASSERT_TRUE(ek) << ek.error().message;
  EXPECT_EQ(ek->cert_index, 0x01C00016U);
  EXPECT_EQ(ek->certificate, read_file(tpm_->ek_cert_dir() / "ek-secp384r1.crt").value());
  // PolicyB EK: PolicySecret(E) + PolicyOR(A, C) in SHA-384.
  auto ak = tpm().create_ak(tpm::AkAlgorithm::kEccP256, tpm::EkTemplate::kEccP384H3);
  ASSERT_TRUE(ak) << ak.error().message;
  EXPECT_EQ(ak->parent, tpm::EkTemplate::kEccP384H3);
  const Bytes nonce(32, 5);
  auto selection = PcrSelection::parse("sha256:0").value();
  auto quote = tpm().quote(*ak, selection, nonce);
  ASSERT_TRUE(quote) << quote.error().message;
  EXPECT_EQ(checkquote(*ak, *quote, selection, hex_encode(nonce)).exit_code, 0);

  const auto dir = tpm_->dir();
  write(dir / "ek384.tpm2b", ek->public_area);
  const Bytes secret(32, 0x42);
  write(dir / "secret384.bin", secret);
  CommandOutput make =
      run_command({"tpm2_makecredential", "-T", "none", "-u", (dir / "ek384.tpm2b").string(), "-s",
                   (dir / "secret384.bin").string(), "-n", hex_encode(ak->name()), "-o",
                   (dir / "cred384.blob").string()},
                  tpm_->tools_env());
  ASSERT_EQ(make.exit_code, 0) << make.out;
  auto file = read_file(dir / "cred384.blob").value();
  ByteReader r(file);
  ASSERT_TRUE(r.skip(8, "header"));
  auto id = r.tpm2b("id");
  auto enc = r.tpm2b("secret");
  ASSERT_TRUE(id && enc);
  ByteWriter idw;
  idw.tpm2b(*id);
  ByteWriter encw;
  encw.tpm2b(*enc);
  auto recovered = tpm().activate_credential(*ak, std::move(idw).take(), std::move(encw).take());
  ASSERT_TRUE(recovered) << recovered.error().message;
  EXPECT_EQ(Bytes(recovered->view().begin(), recovered->view().end()), secret);
}

TEST_F(TpmOperations, MissingEkCertificateIsNotFound) {
  auto ek = tpm().endorsement_key(tpm::EkTemplate::kEccP256L2);
  ASSERT_FALSE(ek);
  EXPECT_EQ(ek.error().code, ErrorCode::kNotFound) << ek.error().message;
  EXPECT_NE(ek.error().message.find("0x01C0000A"), std::string::npos) << ek.error().message;
}

TEST_F(TpmOperations, BindingKeyIsCertifiedAndSignsVerifiably) {
  auto ak = tpm().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  const Bytes nonce(32, 9);
  auto key = tpm().create_binding_key(*ak, nonce);
  ASSERT_TRUE(key) << key.error().message;
  // TPMS_ATTEST: magic ff544347, type 8017 (certify), then qualifiedSigner, extraData = nonce.
  ASSERT_GE(key->certify_attest.size(), 6U);
  EXPECT_EQ(hex_encode(ByteSpan(key->certify_attest).subspan(0, 6)), "ff5443478017");
  EXPECT_NE(std::search(key->certify_attest.begin(), key->certify_attest.end(), nonce.begin(),
                        nonce.end()),
            key->certify_attest.end());

  const Bytes digest = ossl::sha256(to_bytes("message"));
  auto sig = tpm().sign(*key, digest);
  ASSERT_TRUE(sig) << sig.error().message;
  EXPECT_EQ(sig->raw.size(), 64U);
  auto pem = key->public_key_pem();
  ASSERT_TRUE(pem);
  auto pub = ossl::public_key_from_pem(*pem);
  ASSERT_TRUE(pub);
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new(pub->get(), nullptr));
  ASSERT_EQ(EVP_PKEY_verify_init(ctx.get()), 1);
  EXPECT_EQ(
      EVP_PKEY_verify(ctx.get(), sig->der.data(), sig->der.size(), digest.data(), digest.size()),
      1);
}

class TpmTwoBanks : public TpmOperations {
 protected:
  SwtpmOptions options() const override { return {.pcr_banks = "sha1,sha256"}; }
};

TEST_F(TpmTwoBanks, ReadsEveryActiveBank) {
  auto active = tpm().active_pcrs();
  ASSERT_TRUE(active) << active.error().message;
  ASSERT_EQ(active->banks.size(), 2U) << active->to_string();
  auto values = tpm().read_pcrs(*active);
  ASSERT_TRUE(values) << values.error().message;
  ASSERT_EQ(values->size(), 48U);
  EXPECT_EQ(values->front().digest.size(), hash_size(active->banks[0].alg));
  EXPECT_EQ(values->back().digest.size(), hash_size(active->banks[1].alg));
}

// ---- StatePoller ------------------------------------------------------------------------------

/// Extends `pcr` of `bank` with a digest of `fill` through tpm2-tools (another TPM user).
Bytes extend_with_tools(Swtpm& swtpm, const std::string& bank, unsigned pcr, char fill) {
  const std::size_t size = bank == "sha1" ? 20 : 32;
  auto out = run_command(
      {"tpm2_pcrextend", std::to_string(pcr) + ":" + bank + "=" + std::string(size * 2, fill)},
      swtpm.tools_env());
  EXPECT_EQ(out.exit_code, 0) << out.out;
  return hex_decode(std::string(size * 2, fill)).value();
}

const Bytes* find_pcr(const tpm::PcrSnapshot& snapshot, TpmAlg alg, unsigned index) {
  for (const auto& value : snapshot.pcrs) {
    if (value.alg == alg && value.index == index) return &value.digest;
  }
  return nullptr;
}

TEST(TctiHeldConnection, OnlyWhereHoldingItBlocksNobody) {
  EXPECT_TRUE(tpm::tcti_allows_held_connection("swtpm:host=127.0.0.1,port=2321"));
  EXPECT_TRUE(tpm::tcti_allows_held_connection("swtpm"));
  EXPECT_TRUE(tpm::tcti_allows_held_connection("tabrmd"));
  EXPECT_TRUE(tpm::tcti_allows_held_connection("tabrmd:bus_type=session"));
  EXPECT_TRUE(tpm::tcti_allows_held_connection("device:/dev/tpmrm0"));
  EXPECT_TRUE(tpm::tcti_allows_held_connection("libtss2-tcti-swtpm.so.0:port=2321"));
  EXPECT_FALSE(tpm::tcti_allows_held_connection("device:/dev/tpm0"));
  EXPECT_FALSE(tpm::tcti_allows_held_connection("device"));
  EXPECT_FALSE(tpm::tcti_allows_held_connection("mssim:host=127.0.0.1,port=2321"));
  EXPECT_FALSE(tpm::tcti_allows_held_connection(""));
  EXPECT_FALSE(tpm::tcti_allows_held_connection("cmd:tpm2-sim"));
}

TEST_F(TpmOperations, StatePollerAgreesWithSnapshotAndRereadsOnlyWhatMayHaveChanged) {
  auto selection = PcrSelection::parse("sha256:0-9,10,14");
  ASSERT_TRUE(selection);
  tpm::StatePoller poller(tpm_->tcti(), *selection);
  EXPECT_TRUE(poller.keeps_connection());
  auto first = poller.read();
  ASSERT_TRUE(first) << first.error().message;
  auto reference = tpm().snapshot(*selection);
  ASSERT_TRUE(reference) << reference.error().message;
  ASSERT_EQ(first->pcrs.size(), 12u);
  for (std::size_t i = 0; i < first->pcrs.size(); ++i) {
    EXPECT_EQ(first->pcrs[i].index, reference->pcrs[i].index);
    EXPECT_EQ(first->pcrs[i].digest, reference->pcrs[i].digest);
  }
  EXPECT_EQ(first->clock.reset_count, reference->clock.reset_count);
  EXPECT_EQ(first->update_counter, reference->update_counter);
  // swtpm counts 16 and 21-23 as no-increment PCRs; none is selected, so one PCR gates the rest.
  EXPECT_EQ(poller.always_read().to_string(), "sha256:0");

  const auto before = poller.stats();
  auto again = poller.read();
  ASSERT_TRUE(again) << again.error().message;
  const auto after = poller.stats();
  EXPECT_EQ(after.full_reads, before.full_reads);
  EXPECT_EQ(after.commands - before.commands, 2u);  // ReadClock, PCR_Read of PCR 0
  EXPECT_EQ(after.opens, 1u);                       // swtpm: the context stays open
  EXPECT_EQ(again->pcrs.size(), first->pcrs.size());
}

// Every polled PCR, counted or not, shows its new value at the very next read, while tpm2-tools
// (another user of the one-connection swtpm) extends it between reads.
TEST_F(TpmOperations, StatePollerSeesEachExtendedPcrAtTheNextRead) {
  auto selection = PcrSelection::parse("sha256:0-9,10,14,16,23");
  ASSERT_TRUE(selection);
  tpm::StatePoller poller(tpm_->tcti(), *selection);
  auto previous = poller.read();
  ASSERT_TRUE(previous) << previous.error().message;
  EXPECT_EQ(poller.always_read().to_string(), "sha256:16,23");
  for (unsigned pcr : {0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 14u, 16u, 23u}) {
    SCOPED_TRACE("PCR " + std::to_string(pcr));
    const Bytes digest = extend_with_tools(*tpm_, "sha256", pcr, static_cast<char>('a' + pcr % 6));
    auto current = poller.read();
    ASSERT_TRUE(current) << current.error().message;
    Bytes expected = *find_pcr(*previous, TpmAlg::kSha256, pcr);
    expected.insert(expected.end(), digest.begin(), digest.end());
    EXPECT_EQ(hex_encode(*find_pcr(*current, TpmAlg::kSha256, pcr)),
              hex_encode(ossl::sha256(expected)));
    for (const auto& value : current->pcrs) {
      if (value.index != pcr) {
        EXPECT_EQ(value.digest, *find_pcr(*previous, value.alg, value.index)) << value.index;
      }
    }
    previous = std::move(current);
  }
}

// After a TPM Reset the counter can be back where it was; the changed resetCount still forces a
// full read (PCR 5 back to zero), over the context held across the reset.
TEST_F(TpmOperations, StatePollerRereadsEverythingAfterAResetEvenWithTheSameCounter) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  tpm::StatePoller poller(tpm_->tcti(), *selection);
  extend_with_tools(*tpm_, "sha256", 5, '5');
  auto before = poller.read();
  ASSERT_TRUE(before) << before.error().message;
  ASSERT_NE(*find_pcr(*before, TpmAlg::kSha256, 5), Bytes(32, 0));
  tpm_->power_cycle();
  // Extend PCR 9 (not read while the counter stands still) until the counter is back.
  auto probe = PcrSelection::parse("sha256:0");
  for (int i = 0; i < 64; ++i) {
    auto now = tpm().snapshot(*probe);
    ASSERT_TRUE(now) << now.error().message;
    if (now->update_counter >= before->update_counter) break;
    extend_with_tools(*tpm_, "sha256", 9, '9');
  }
  ASSERT_EQ(tpm().snapshot(*probe)->update_counter, before->update_counter);
  const auto full_reads = poller.stats().full_reads;
  auto after = poller.read();
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->clock.reset_count, before->clock.reset_count + 1);
  EXPECT_EQ(*find_pcr(*after, TpmAlg::kSha256, 5), Bytes(32, 0));
  EXPECT_NE(*find_pcr(*after, TpmAlg::kSha256, 9), Bytes(32, 0));
  EXPECT_EQ(poller.stats().full_reads, full_reads + 1);
  EXPECT_EQ(poller.stats().opens, 1u);
}

TEST_F(TpmOperations, StatePollerReportsALostTpmAndForgetsItsLastRead) {
  auto selection = PcrSelection::parse("sha256:0-9");
  ASSERT_TRUE(selection);
  tpm::StatePoller poller(tpm_->tcti(), *selection);
  ASSERT_TRUE(poller.read());
  tpm_->kill();
  auto lost = poller.read();
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, ErrorCode::kTpm) << lost.error().message;
  EXPECT_FALSE(poller.read());
  EXPECT_EQ(poller.always_read().to_string(), "");
}

TEST_F(TpmTwoBanks, StatePollerGatesBothBanksOnTheOneCounter) {
  auto selection = PcrSelection::parse("sha1:0-9+sha256:0-9");
  ASSERT_TRUE(selection);
  tpm::StatePoller poller(tpm_->tcti(), *selection);
  auto first = poller.read();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->pcrs.size(), 20u);
  const auto full_reads = poller.stats().full_reads;
  ASSERT_TRUE(poller.read());
  EXPECT_EQ(poller.stats().full_reads, full_reads);
  extend_with_tools(*tpm_, "sha1", 8, '8');
  auto after = poller.read();
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_NE(*find_pcr(*after, TpmAlg::kSha1, 8), *find_pcr(*first, TpmAlg::kSha1, 8));
  EXPECT_EQ(*find_pcr(*after, TpmAlg::kSha256, 8), *find_pcr(*first, TpmAlg::kSha256, 8));
  EXPECT_EQ(poller.stats().full_reads, full_reads + 1);
}

}  // namespace
}  // namespace warden::test
