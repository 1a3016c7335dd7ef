// attest/verify against a real swtpm: a real firmware event log (tests/data/eventlog) extended into
// the TPM, quotes and certified binding keys made by the TPM, and what verify() returns of them.
#include "attest/verify/verify.h"

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/tpm.h"
#include "tests/support/ima_list.h"
#include "tests/support/swtpm.h"

namespace warden::attest::verify {
namespace {

namespace ev = attest::eventlog;
namespace q = attest::quote;

constexpr const char* kBootPcrs = "sha256:0,1,2,3,4,5,6,7,8,9";

bool has_refusal(const std::vector<protocol::Reason>& reasons, std::string_view code,
                 std::string_view subject = {}) {
  return std::any_of(reasons.begin(), reasons.end(), [&](const protocol::Reason& r) {
    return r.code == code && (subject.empty() || r.subject == subject);
  });
}

std::string text(const std::vector<protocol::Reason>& reasons) {
  std::string out;
  for (const auto& r : reasons)
    out += r.code + " [" + r.subject + "] " + r.found.value_or("") + "\n";
  return out;
}

std::size_t events_of(const ev::EventLog& log, unsigned pcr) {
  return static_cast<std::size_t>(std::count_if(log.events.begin(), log.events.end(),
                                                [&](const ev::Event& e) { return e.pcr == pcr; }));
}

// A boot-order change on a UEFI machine with GRUB (PCRs 0-9, sha1 and sha256 digests, Secure
// Boot off), extended into a TPM with both banks as its firmware would have.
class VerifyTest : public test::SwtpmTest {
 protected:
  test::SwtpmOptions options() const override { return {.pcr_banks = "sha1,sha256"}; }

  void SetUp() override {
    SwtpmTest::SetUp();
    auto bytes =
        read_file(std::filesystem::path(WARDEN_TESTDATA_DIR) / "eventlog" / "event-bootorder.bin");
    ASSERT_TRUE(bytes) << bytes.error().message;
    log_bytes_ = std::move(*bytes);
    auto log = ev::parse(log_bytes_);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(*log);
    extend_boot_log();
    auto ak = tpm().create_ak();
    ASSERT_TRUE(ak) << ak.error().message;
    ak_blob_ = std::move(*ak);
    auto area = q::parse_public2b(ak_blob_.public_area);
    ASSERT_TRUE(area) << area.error().message;
    ak_ = std::move(*area);
  }

  [[nodiscard]] tpm::Tpm tpm() const { return tpm::Tpm(tpm_->tcti()); }

  void extend_boot_log() {
    for (const ev::Event& e : log_.events) {
      if (e.type == ev::kEvNoAction) continue;
      for (const ev::EventDigest& d : e.digests) {
        auto bank = hash_from_tpm_id(d.alg);
        ASSERT_TRUE(bank);
        ASSERT_TRUE(tpm().extend_pcr(e.pcr, *bank, d.digest));
      }
    }
  }

  void extend_ima(const test::ImaChunk& chunk) {
    for (const Bytes& d : chunk.extends) ASSERT_TRUE(tpm().extend_pcr(10, TpmAlg::kSha256, d));
  }

  // Evidence quoted over `selection` with `quote_nonce`, claiming `nonce`; the binding key is
  // certified by `certifier` (default: the AK).
  protocol::AttestRequest request(const std::string& selection, const Bytes& nonce,
                                  const Bytes* quote_nonce = nullptr,
                                  const tpm::AkBlob* certifier = nullptr) {
    auto quote = tpm().quote(ak_blob_, *PcrSelection::parse(selection),
                             quote_nonce != nullptr ? *quote_nonce : nonce);
    EXPECT_TRUE(quote) << quote.error().message;
    auto bk = tpm().create_binding_key(certifier != nullptr ? *certifier : ak_blob_, nonce);
    EXPECT_TRUE(bk) << bk.error().message;
    protocol::AttestRequest r;
    r.device_id = "device-1";
    r.nonce = nonce;
    r.quote = {quote->attest, quote->signature};
    r.pcr_selection = selection;
    r.boot_log = log_bytes_;
    r.binding_key = {bk->public_area, {bk->certify_attest, bk->certify_signature}};
    return r;
  }

  VerifiedEvidence run(const protocol::AttestRequest& r, const DeviceRecord& device = {},
                       const Expectations& expected = {}) {
    DeviceRecord d = device;
    d.ak = &ak_;
    auto out = verify(r, d, expected);
    EXPECT_TRUE(out) << out.error().message;
    return out ? std::move(*out) : VerifiedEvidence{};
  }

  Bytes log_bytes_;
  ev::EventLog log_;
  tpm::AkBlob ak_blob_;
  q::PublicArea ak_;
  const Bytes nonce_ = Bytes(32, 0x5a);
};

TEST_F(VerifyTest, AGoodQuoteVerifiesAndReturnsItsEvents) {
  const auto out = run(request(kBootPcrs, nonce_));
  EXPECT_TRUE(out.signed_by_ak);
  EXPECT_TRUE(out.quote_verified) << text(out.refusals);
  EXPECT_TRUE(out.refusals.empty()) << text(out.refusals);
  EXPECT_EQ(out.quoted, *PcrSelection::parse(kBootPcrs));
  ASSERT_TRUE(out.boot_log);
  // Every event of the log is in a quoted PCR.
  EXPECT_EQ(out.boot_log->events.size(), log_.events.size());
  for (unsigned pcr = 0; pcr < 10; ++pcr) {
    EXPECT_EQ(events_of(*out.boot_log, pcr), events_of(log_, pcr)) << "PCR " << pcr;
  }
  // The replayed PCRs are the TPM's.
  auto read = tpm().read_pcrs(*PcrSelection::parse(kBootPcrs));
  ASSERT_TRUE(read);
  for (const auto& v : *read) {
    const Bytes* replayed = out.pcrs.get(v.alg, v.index);
    ASSERT_NE(replayed, nullptr);
    EXPECT_EQ(*replayed, v.digest) << "PCR " << v.index;
  }
  // The policy's view: Secure Boot is measured (off on this machine).
  const auto boot = boot_evidence(*out.boot_log);
  EXPECT_EQ(boot.secure_boot, std::optional<bool>(false));
  ASSERT_TRUE(out.bound_key) << text(out.key_refusals);
  EXPECT_TRUE(out.key_refusals.empty());
  ASSERT_TRUE(out.clock);
}

TEST_F(VerifyTest, EventsOfAnUnquotedPcrOrBankAreNotReturned) {
  const auto out = run(request("sha256:0,1,2,3,4,5,6", nonce_));
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  ASSERT_TRUE(out.boot_log);
  ASSERT_GT(events_of(log_, 7), 0U);
  ASSERT_GT(events_of(log_, 8), 0U);
  for (unsigned pcr : {7U, 8U, 9U}) EXPECT_EQ(events_of(*out.boot_log, pcr), 0U) << "PCR " << pcr;
  for (unsigned pcr = 0; pcr < 7; ++pcr) {
    EXPECT_EQ(events_of(*out.boot_log, pcr), events_of(log_, pcr)) << "PCR " << pcr;
  }
  // Only the sha256 bank was quoted: the events' sha1 digests vouch for nothing.
  for (const ev::Event& e : out.boot_log->events) {
    for (const ev::EventDigest& d : e.digests) {
      EXPECT_EQ(hash_from_tpm_id(d.alg), std::optional<TpmAlg>(TpmAlg::kSha256));
    }
  }
  // The SecureBoot variable is measured into PCR 7, which was not quoted.
  EXPECT_FALSE(boot_evidence(*out.boot_log).secure_boot);
}

TEST_F(VerifyTest, ALogThatDoesNotReplayReturnsNoEventsAndARefusal) {
  // Something the log does not show was extended into PCR 4.
  ASSERT_TRUE(tpm().extend_pcr(4, TpmAlg::kSha256, ossl::sha256(to_bytes("unlogged loader"))));
  const auto out = run(request(kBootPcrs, nonce_));
  EXPECT_TRUE(out.signed_by_ak);
  EXPECT_FALSE(out.quote_verified);
  EXPECT_TRUE(has_refusal(out.refusals, "replay_mismatch", "quote")) << text(out.refusals);
  EXPECT_FALSE(out.boot_log);
  EXPECT_TRUE(out.pcrs.banks().empty());
  EXPECT_TRUE(out.quoted.banks.empty());
}

TEST_F(VerifyTest, AQuoteOverAnotherNonceIsRefused) {
  const Bytes other(32, 0x11);
  const auto out = run(request(kBootPcrs, nonce_, &other));
  EXPECT_FALSE(out.quote_verified);
  EXPECT_FALSE(out.signed_by_ak);
  EXPECT_TRUE(has_refusal(out.refusals, "nonce_mismatch", "quote")) << text(out.refusals);
  EXPECT_FALSE(out.boot_log);
}

TEST_F(VerifyTest, ABindingKeyNotCertifiedByTheAkIsRefused) {
  auto other = tpm().create_ak();
  ASSERT_TRUE(other) << other.error().message;
  const auto out = run(request(kBootPcrs, nonce_, nullptr, &*other));
  // The quote itself holds up; the key tokens would be bound to does not.
  EXPECT_TRUE(out.quote_verified) << text(out.refusals);
  EXPECT_FALSE(out.bound_key);
  EXPECT_TRUE(has_refusal(out.key_refusals, "bad_signature", "binding key certify"))
      << text(out.key_refusals);
}

TEST_F(VerifyTest, APolicyReadingAnUnquotedPcrIsRefusedWithThePcr) {
  auto policy = policy::parse_policy(
      "version = \"v\"\n[boot]\nsecure_boot = \"disabled\"\n[pcrs.sha256]\n0 = \"" +
      std::string(64, '0') + "\"\n");
  ASSERT_TRUE(policy) << policy.error().message;
  const auto out = run(request("sha256:0,1,2,3,4,5,6", nonce_), {}, expectations(*policy));
  EXPECT_TRUE(out.quote_verified);
  EXPECT_TRUE(has_refusal(out.refusals, "pcr_selection_mismatch", "PCR 7")) << text(out.refusals);
  EXPECT_FALSE(has_refusal(out.refusals, "pcr_selection_mismatch", "PCR sha256:0"));
  const auto all = run(request(kBootPcrs, nonce_), {}, expectations(*policy));
  EXPECT_TRUE(all.refusals.empty()) << text(all.refusals);
}

TEST_F(VerifyTest, ARebootRestartsTheImaReplay) {
  const std::string selection = "sha256:0,1,2,3,4,5,6,7,10";
  const auto first = test::ima_chunk({"/usr/bin/a", "/usr/bin/b"});
  extend_ima(first);
  auto r = request(selection, nonce_);
  r.ima = protocol::ImaLog{0, first.list, protocol::ImaFormat::kBinary};
  auto out = run(r);
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  ASSERT_TRUE(out.ima_state);
  EXPECT_EQ(out.ima_entries.size(), 2U);
  // What an issuer stores of it.
  const Bytes state = encode_ima_state(out.ima_state->pcrs);
  DeviceRecord device{nullptr, out.clock->reset_count, out.ima_state->entries, state};

  // Same boot: the next upload continues where the last one ended.
  const auto second = test::ima_chunk({"/usr/bin/c"});
  extend_ima(second);
  r = request(selection, nonce_);
  r.ima = protocol::ImaLog{2, second.list, protocol::ImaFormat::kBinary};
  out = run(r, device);
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  EXPECT_FALSE(out.rebooted);
  ASSERT_TRUE(out.ima_state);
  EXPECT_EQ(out.ima_state->entries, 3U);
  ASSERT_EQ(out.ima_entries.size(), 1U);
  EXPECT_EQ(out.ima_entries[0].path, "/usr/bin/c");
  const Bytes state3 = encode_ima_state(out.ima_state->pcrs);
  device.ima_entries = 3;
  device.ima_state = state3;

  // A reboot: resetCount goes up, PCR 10 starts over with a new list.
  tpm_->power_cycle();
  extend_boot_log();
  const auto fresh = test::ima_chunk({"/usr/bin/d"});
  extend_ima(fresh);
  r = request(selection, nonce_);
  r.ima = protocol::ImaLog{3, fresh.list, protocol::ImaFormat::kBinary};
  out = run(r, device);
  EXPECT_TRUE(out.rebooted);
  EXPECT_FALSE(out.quote_verified);
  EXPECT_TRUE(has_refusal(out.refusals, "invalid_argument", "ima offset")) << text(out.refusals);
  EXPECT_TRUE(out.ima_entries.empty());

  r = request(selection, nonce_);
  r.ima = protocol::ImaLog{0, fresh.list, protocol::ImaFormat::kBinary};
  out = run(r, device);
  EXPECT_TRUE(out.rebooted);
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  EXPECT_TRUE(out.refusals.empty()) << text(out.refusals);
  ASSERT_TRUE(out.ima_state);
  EXPECT_EQ(out.ima_state->entries, 1U);
  ASSERT_EQ(out.ima_entries.size(), 1U);
  EXPECT_EQ(out.ima_entries[0].path, "/usr/bin/d");
}

TEST_F(VerifyTest, ImaEntriesTheQuoteDidNotCoverAreNotReturned) {
  const std::string selection = "sha256:0,10";
  const auto quoted = test::ima_chunk({"/usr/bin/a", "/usr/bin/b"});
  extend_ima(quoted);
  auto r = request(selection, nonce_);
  // The list grew after the quote: a third entry, with PCR 10 as quoted reported alongside.
  const auto grown = test::ima_chunk({"/usr/bin/a", "/usr/bin/b", "/usr/bin/late"});
  r.ima = protocol::ImaLog{0, grown.list, protocol::ImaFormat::kBinary};
  auto pcr10 = tpm().read_pcrs(*PcrSelection::parse("sha256:10"));
  ASSERT_TRUE(pcr10);
  r.pcr_values.push_back(
      {static_cast<std::uint16_t>(TpmAlg::kSha256), std::uint8_t{10}, (*pcr10)[0].digest});
  const auto out = run(r);
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  ASSERT_EQ(out.ima_entries.size(), 2U);
  EXPECT_EQ(out.ima_entries[1].path, "/usr/bin/b");
  EXPECT_EQ(out.ima_state->entries, 2U);
}

TEST_F(VerifyTest, ContainerRecordsOnlyWithTheirPcrQuoted) {
  cel::ContainerContent c{cel::ContainerEvent::kStart,      "c1",   "docker.io/library/nginx:1.25",
                          "sha256:" + std::string(64, 'b'), "runc", "/system.slice/c1.scope"};
  const std::vector<TpmAlg> banks{TpmAlg::kSha1, TpmAlg::kSha256};
  auto record = cel::make_record(0, c, banks);
  ASSERT_TRUE(record) << record.error().message;
  for (const auto& [bank, digest] : record->digests) {
    ASSERT_TRUE(tpm().extend_pcr(cel::kDefaultContainerPcr, bank, digest));
  }
  const Bytes log = cel::encode(std::vector<cel::Record>{*record});

  auto r = request("sha256:0,15", nonce_);
  r.cel = log;
  auto out = run(r);
  ASSERT_TRUE(out.quote_verified) << text(out.refusals);
  ASSERT_EQ(out.containers.size(), 1U);
  EXPECT_EQ(out.containers[0].content.container_id, "c1");

  r = request("sha256:0", nonce_);
  r.cel = log;
  out = run(r);
  EXPECT_TRUE(out.containers.empty());
  EXPECT_TRUE(has_refusal(out.refusals, "pcr_selection_mismatch", "PCR 15")) << text(out.refusals);
}

}  // namespace
}  // namespace warden::attest::verify
