// Each named workaround with a log that needs it: the id is reported, the replay gives the values
// tpm2-tools computed (or, for hand-built logs, the values derived in the test), and without the
// workaround the log fails or replays differently.
#include <array>
#include <set>

#include <gtest/gtest.h>

#include "attest/eventlog/eventlog.h"
#include "attest/eventlog/quirks.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"
#include "tests/unit/attest/eventlog_testdata.h"

namespace warden::attest::eventlog {
namespace {

using namespace testdata;

std::size_t count_id(const std::vector<AppliedQuirk>& applied, QuirkId id) {
  return static_cast<std::size_t>(
      std::count_if(applied.begin(), applied.end(),
                    [&](const AppliedQuirk& a) { return a.id == quirk(id).name; }));
}

std::set<std::string_view> ids(const std::vector<AppliedQuirk>& applied) {
  std::set<std::string_view> out;
  for (const auto& a : applied) out.insert(a.id);
  return out;
}

void expect_pcrs_as_tpm2_tools(const Replay& r, const std::string& name) {
  const auto expected = expected_pcrs(kDir / "expected" / (name + ".yaml"));
  ASSERT_FALSE(expected.empty()) << name;
  for (const auto& e : expected) {
    const Bytes* got = r.pcrs.get(e.alg, e.pcr);
    ASSERT_NE(got, nullptr) << hash_name(e.alg) << ":" << e.pcr;
    EXPECT_EQ(hex_encode(*got), hex_encode(e.value)) << hash_name(e.alg) << ":" << e.pcr;
  }
}

// A crypto-agile sha256-only log: the Spec ID record, then `events` (pcr, type, digest byte, data).
struct SyntheticEvent {
  std::uint32_t pcr;
  std::uint32_t type;
  std::uint8_t digest_byte;
  Bytes data;
};
Bytes sha256_log(const std::vector<SyntheticEvent>& events) {
  ByteWriter spec;
  spec.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
  spec.u16le(0x0B).u16le(32).u8(0);
  const Bytes s = std::move(spec).take();
  ByteWriter w;
  w.u32le(0).u32le(kEvNoAction).bytes(Bytes(20, 0)).u32le(static_cast<std::uint32_t>(s.size()));
  w.bytes(s);
  for (const auto& e : events) {
    w.u32le(e.pcr).u32le(e.type).u32le(1).u16le(0x0B).bytes(Bytes(32, e.digest_byte));
    w.u32le(static_cast<std::uint32_t>(e.data.size())).bytes(e.data);
  }
  return std::move(w).take();
}

Bytes startup_locality(std::uint8_t locality) {
  ByteWriter w;
  w.bytes(std::string_view("StartupLocality\0", 16)).u8(locality);
  return std::move(w).take();
}

Bytes pcr_after(std::uint8_t initial_last_byte, std::uint8_t digest_byte) {
  Bytes cat(32, 0);
  cat[31] = initial_last_byte;
  cat.resize(64, digest_byte);
  return ossl::sha256(cat);
}

TEST(EventLogQuirksTest, TableHasStableUniqueIdsAndOneHookEach) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < quirk_table().size(); ++i) {
    const Quirk& q = quirk_table()[i];
    SCOPED_TRACE(std::string(q.name));
    EXPECT_EQ(static_cast<std::size_t>(q.id), i);
    EXPECT_EQ(&quirk(q.id), &q);
    EXPECT_FALSE(q.summary.empty());
    EXPECT_TRUE(names.insert(q.name).second);
    const std::array<bool, 4> hooks{q.vendor_info_overrun != nullptr, q.is_padding != nullptr,
                                    q.pcr0_locality != nullptr, q.digest_inputs != nullptr};
    EXPECT_EQ(std::count(hooks.begin(), hooks.end(), true), 1);
    // Event hooks act on PCRs; parse hooks may not.
    if (q.pcr0_locality != nullptr || q.digest_inputs != nullptr) {
      EXPECT_NE(q.pcrs, 0u);
    }
  }
  EXPECT_EQ(names.size(), kQuirkCount);
  EXPECT_EQ(quirk(QuirkId::kGrubIplText).name, "grub-ipl-text");
  EXPECT_EQ(quirk(QuirkId::kGrubIplText).pcrs, (1u << 8) | (1u << 9));
}

TEST(EventLogQuirksTest, QuirkSetSwitchesOneOff) {
  const auto all = QuirkSet::all();
  const auto some = all.without(QuirkId::kStartupLocality);
  for (const Quirk& q : quirk_table()) {
    EXPECT_TRUE(all.has(q.id));
    EXPECT_FALSE(QuirkSet::none().has(q.id));
    EXPECT_EQ(some.has(q.id), q.id != QuirkId::kStartupLocality);
  }
}

TEST(EventLogQuirksTest, SpecIdVendorInfoOverrun) {
  const Bytes bytes = read_all(kDir / "specid-vendordata.bin");
  auto log = parse(bytes);
  ASSERT_TRUE(log) << log.error().message;
  ASSERT_EQ(count_id(log->quirks, QuirkId::kSpecIdVendorInfoOverrun), 1u);
  EXPECT_EQ(log->quirks[0].offset, 0u);
  ASSERT_TRUE(log->spec_id);
  EXPECT_EQ(hex_encode(log->spec_id->vendor_info), "deadbeef");  // tpm2-tools' vendorInfo
  auto r = replay(*log);
  ASSERT_TRUE(r);
  // tpm2-tools lists no PCR for it: nothing is extended, both banks stay zero.
  EXPECT_EQ(r->pcrs.banks(), (std::vector<TpmAlg>{TpmAlg::kSha1, TpmAlg::kSha256}));
  EXPECT_EQ(*r->pcrs.get(TpmAlg::kSha256, 0), Bytes(32, 0));

  auto strict =
      parse(bytes, {.quirks = QuirkSet::all().without(QuirkId::kSpecIdVendorInfoOverrun)});
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code, ErrorCode::kMalformed);
  EXPECT_NE(strict.error().message.find("vendorInfo"), std::string::npos) << strict.error().message;
}

TEST(EventLogQuirksTest, TrailingZeroPadding) {
  Bytes bytes = read_all(kDir / "event.bin");
  auto plain = parse(bytes);
  ASSERT_TRUE(plain);
  EXPECT_EQ(count_id(plain->quirks, QuirkId::kTrailingZeroPadding), 0u);
  const std::size_t end = bytes.size();
  bytes.resize(end + 4096, 0);
  auto log = parse(bytes);
  ASSERT_TRUE(log) << log.error().message;
  ASSERT_EQ(count_id(log->quirks, QuirkId::kTrailingZeroPadding), 1u);
  EXPECT_EQ(log->quirks.back().offset, end);
  EXPECT_EQ(log->events.size(), plain->events.size());
  auto r = replay(*log);
  ASSERT_TRUE(r);
  expect_pcrs_as_tpm2_tools(*r, "event.bin");

  // Read as records, 4096 zero bytes are 256 empty EV_PREBOOT_CERT events with no digest; 1000 end
  // in a truncated one.
  const ParseOptions no_padding{.quirks = QuirkSet::all().without(QuirkId::kTrailingZeroPadding)};
  auto bogus = parse(bytes, no_padding);
  ASSERT_TRUE(bogus);
  EXPECT_EQ(bogus->events.size(), plain->events.size() + 256);
  auto bogus_replay = replay(*bogus);
  ASSERT_TRUE(bogus_replay);
  EXPECT_GE(bogus_replay->warnings.size(), 256u);
  bytes.resize(end + 1000);
  EXPECT_TRUE(parse(bytes));
  auto strict = parse(bytes, no_padding);
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find("offset"), std::string::npos);
}

TEST(EventLogQuirksTest, StartupLocalitySetsPcr0) {
  auto log = parse(sha256_log(
      {{0, kEvNoAction, 0, startup_locality(3)}, {0, kEvSCrtmVersion, 0xab, Bytes{0, 0}}}));
  ASSERT_TRUE(log) << log.error().message;
  auto r = replay(*log);
  ASSERT_TRUE(r);
  ASSERT_EQ(count_id(r->quirks, QuirkId::kStartupLocality), 1u);
  EXPECT_EQ(r->quirks[0].offset, log->events[1].offset);
  EXPECT_EQ(*r->pcrs.get(TpmAlg::kSha256, 0), pcr_after(3, 0xab));

  auto without = replay(*log, QuirkSet::all().without(QuirkId::kStartupLocality));
  ASSERT_TRUE(without);
  EXPECT_TRUE(without->quirks.empty());
  EXPECT_EQ(*without->pcrs.get(TpmAlg::kSha256, 0), pcr_after(0, 0xab));
}

TEST(EventLogQuirksTest, LateOrMisplacedStartupLocalityIsNotApplied) {
  auto late = parse(sha256_log(
      {{0, kEvSCrtmVersion, 0xab, Bytes{0, 0}}, {0, kEvNoAction, 0, startup_locality(3)}}));
  ASSERT_TRUE(late);
  auto r = replay(*late);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->quirks.empty());
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("startup-locality after PCR0 was extended"), std::string::npos);
  EXPECT_EQ(*r->pcrs.get(TpmAlg::kSha256, 0), pcr_after(0, 0xab));

  // The quirk's PCR mask is PCR 0: the same event on PCR 3 sets nothing.
  auto other_pcr = parse(sha256_log({{3, kEvNoAction, 0, startup_locality(3)}}));
  ASSERT_TRUE(other_pcr);
  auto r3 = replay(*other_pcr);
  ASSERT_TRUE(r3);
  EXPECT_TRUE(r3->quirks.empty());
  EXPECT_EQ(*r3->pcrs.get(TpmAlg::kSha256, 0), Bytes(32, 0));
  EXPECT_EQ(*r3->pcrs.get(TpmAlg::kSha256, 3), Bytes(32, 0));
}

TEST(EventLogQuirksTest, HcrtmEventStartsPcr0AtLocality4) {
  auto log = parse(sha256_log({{0, kEvEfiHcrtmEvent, 0xcd, Bytes{'H', 'C', 'R', 'T', 'M'}}}));
  ASSERT_TRUE(log);
  auto r = replay(*log);
  ASSERT_TRUE(r);
  ASSERT_EQ(count_id(r->quirks, QuirkId::kHcrtmLocality), 1u);
  EXPECT_EQ(*r->pcrs.get(TpmAlg::kSha256, 0), pcr_after(4, 0xcd));

  auto without = replay(*log, QuirkSet::all().without(QuirkId::kHcrtmLocality));
  ASSERT_TRUE(without);
  EXPECT_EQ(*without->pcrs.get(TpmAlg::kSha256, 0), pcr_after(0, 0xcd));
}

// Digest-check quirks: `name` needs `id` on exactly the events listed; the tpm2-tools replay holds.
void expect_digest_quirk(const std::string& name, QuirkId id, std::size_t applied,
                         const std::vector<std::size_t>& flagged_without) {
  SCOPED_TRACE(name);
  auto log = parse(read_all(kDir / name));
  ASSERT_TRUE(log);
  auto r = replay(*log);
  ASSERT_TRUE(r);
  expect_pcrs_as_tpm2_tools(*r, name);
  const auto known = expected_flagged(kDir / "expected" / (name + ".err"));

  const auto with = check_event_digests(*log);
  EXPECT_EQ(count_id(with.quirks, id), applied);
  std::vector<std::size_t> flagged;
  for (const auto& m : with.mismatches) flagged.push_back(m.index);
  EXPECT_EQ(flagged, known);

  const auto without = check_event_digests(*log, QuirkSet::all().without(id));
  EXPECT_EQ(count_id(without.quirks, id), 0u);
  flagged.clear();
  for (const auto& m : without.mismatches) flagged.push_back(m.index);
  std::vector<std::size_t> want = known;
  want.insert(want.end(), flagged_without.begin(), flagged_without.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(flagged, want);
}

std::vector<std::size_t> events_of(const std::string& name, std::uint32_t type,
                                   const std::set<std::uint32_t>& pcrs) {
  auto log = parse(read_all(kDir / name));
  std::vector<std::size_t> out;
  if (!log) return out;
  for (const auto& e : log->events)
    if (e.type == type && pcrs.count(e.pcr) > 0) out.push_back(e.index);
  return out;
}

TEST(EventLogQuirksTest, VariableBootDigestOfDataOnly) {
  // OVMF-style firmware (bootorder, moklisttrusted, systemd-boot on Fedora) hashes VariableData.
  for (const char* name :
       {"event-bootorder.bin", "event-moklisttrusted.bin", "event-sd-boot-fedora37.bin"}) {
    const auto boot_vars = events_of(name, kEvEfiVariableBoot, {1});
    ASSERT_FALSE(boot_vars.empty()) << name;
    expect_digest_quirk(name, QuirkId::kVariableBootDataOnly, boot_vars.size(), boot_vars);
  }
  // Arch Linux's firmware hashes the whole UEFI_VARIABLE_DATA: no workaround needed.
  expect_digest_quirk("event-arch-linux.bin", QuirkId::kVariableBootDataOnly, 0, {});
}

TEST(EventLogQuirksTest, GrubIplText) {
  for (const char* name : {"event-bootorder.bin", "event-postcode.bin"}) {
    const auto grub = events_of(name, kEvIpl, {8, 9});
    ASSERT_GE(grub.size(), 10u) << name;
    expect_digest_quirk(name, QuirkId::kGrubIplText, grub.size(), grub);
  }
}

TEST(EventLogQuirksTest, ShimMokListNames) {
  const auto mok = events_of("event-moklisttrusted.bin", kEvIpl, {14});
  EXPECT_EQ(mok, (std::vector<std::size_t>{26, 27, 30}));
  expect_digest_quirk("event-moklisttrusted.bin", QuirkId::kShimMokIplText, 3, mok);
}

TEST(EventLogQuirksTest, IplTextOutsideTheQuirksPcrsIsChecked) {
  auto log = parse(sha256_log({{4, kEvIpl, 0x11, Bytes{'g', 'r', 'u', 'b', 0}},
                               {8, kEvIpl, 0x11, Bytes{'g', 'r', 'u', 'b', 0}}}));
  ASSERT_TRUE(log);
  const auto check = check_event_digests(*log);
  ASSERT_EQ(check.mismatches.size(), 1u);
  EXPECT_EQ(check.mismatches[0].index, 1u);
  EXPECT_EQ(ids(check.quirks), (std::set<std::string_view>{"grub-ipl-text"}));
}

TEST(EventLogQuirksTest, RealLogsReportWhichWorkaroundsApplied) {
  auto log = parse(read_all(kDir / "event-moklisttrusted.bin"));
  ASSERT_TRUE(log);
  EXPECT_TRUE(log->quirks.empty());
  auto r = replay(*log);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->quirks.empty());
  EXPECT_EQ(ids(check_event_digests(*log).quirks),
            (std::set<std::string_view>{"efi-variable-boot-data-only", "grub-ipl-text",
                                        "shim-mok-ipl-name"}));
}

}  // namespace
}  // namespace warden::attest::eventlog
