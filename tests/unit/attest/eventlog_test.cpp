#include "attest/eventlog/eventlog.h"

#include <gtest/gtest.h>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"
#include "tests/unit/attest/eventlog_testdata.h"

namespace warden::attest::eventlog {
namespace {

using namespace testdata;

TEST(EventLogTest, EveryLogReplaysToExpectedPcrs) {
  const auto files = logs();
  ASSERT_GE(files.size(), 10u);
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    auto log = parse(read_all(f));
    ASSERT_TRUE(log) << log.error().message;
    auto r = replay(*log);
    ASSERT_TRUE(r) << r.error().message;
    const auto expected = expected_pcrs(kDir / "expected" / (f.filename().string() + ".yaml"));
    if (f.filename() != "specid-vendordata.bin") {
      ASSERT_FALSE(expected.empty());
    }
    for (const auto& e : expected) {
      const Bytes* got = r->pcrs.get(e.alg, e.pcr);
      ASSERT_NE(got, nullptr) << hash_name(e.alg) << ":" << e.pcr;
      EXPECT_EQ(hex_encode(*got), hex_encode(e.value)) << hash_name(e.alg) << ":" << e.pcr;
    }
  }
}

TEST(EventLogTest, FlagsExactlyTheMismatchingDigests) {
  for (const auto& f : logs()) {
    SCOPED_TRACE(f.filename().string());
    auto log = parse(read_all(f));
    ASSERT_TRUE(log);
    std::vector<std::size_t> flagged;
    for (const auto& m : check_digests(*log)) flagged.push_back(m.index);
    EXPECT_EQ(flagged, expected_flagged(kDir / "expected" / (f.filename().string() + ".err")));
  }
}

TEST(EventLogTest, ArchLinuxEvent24IsFlaggedWithReason) {
  auto log = parse(read_all(kDir / "event-arch-linux.bin"));
  ASSERT_TRUE(log);
  auto m = check_digests(*log);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].index, 24u);
  EXPECT_NE(m[0].reason.find("EV_IPL"), std::string::npos) << m[0].reason;
}

TEST(EventLogTest, LegacySha1LogHasOnlySha1Bank) {
  auto log = parse(read_all(kDir / "event-uefi-sha1-log.bin"));
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->crypto_agile);
  auto r = replay(*log);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->pcrs.banks(), std::vector<TpmAlg>{TpmAlg::kSha1});
}

TEST(EventLogTest, DecodesUefiVariables) {
  auto log = parse(read_all(kDir / "event-uefivar.bin"));
  ASSERT_TRUE(log);
  bool saw_variable = false;
  for (const auto& e : log->events) {
    if (e.type != kEvEfiVariableDriverConfig && e.type != kEvEfiVariableBoot) continue;
    auto v = parse_uefi_variable(e.data);
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_EQ(v->guid.size(), 36u);
    EXPECT_FALSE(v->name.empty());
    saw_variable = true;
  }
  EXPECT_TRUE(saw_variable);
}

TEST(EventLogTest, SecureBootStateAndDecodedFields) {
  auto log = parse(read_all(kDir / "event-arch-linux.bin"));
  ASSERT_TRUE(log);
  auto sb = secure_boot_enabled(*log);
  ASSERT_TRUE(sb.has_value());
  bool saw_db = false, saw_path = false, saw_sep = false;
  for (const auto& e : log->events) {
    for (const auto& f : decode(e)) {
      if (f.name == "UnicodeName" && f.value == "db") saw_db = true;
      if (f.name == "DevicePath" && f.value.find("File(") != std::string::npos) saw_path = true;
      if (f.name == "Separator") saw_sep = true;
    }
  }
  EXPECT_TRUE(saw_db);
  EXPECT_TRUE(saw_path);
  EXPECT_TRUE(saw_sep);
}

// A hand-built crypto-agile log (sha256 only) with a StartupLocality event.
Bytes startup_locality_log(std::uint8_t locality, bool add_extend) {
  ByteWriter w;
  Bytes spec;
  {
    ByteWriter s;
    s.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
    s.u16le(0x0B).u16le(32).u8(0);
    spec = std::move(s).take();
  }
  w.u32le(0)
      .u32le(kEvNoAction)
      .bytes(Bytes(20, 0))
      .u32le(static_cast<std::uint32_t>(spec.size()))
      .bytes(spec);
  Bytes sl;
  {
    ByteWriter s;
    s.bytes(std::string_view("StartupLocality\0", 16)).u8(locality);
    sl = std::move(s).take();
  }
  w.u32le(0).u32le(kEvNoAction).u32le(1).u16le(0x0B).bytes(Bytes(32, 0)).u32le(17).bytes(sl);
  if (add_extend) {
    const Bytes d(32, 0xab);
    w.u32le(0).u32le(kEvSCrtmVersion).u32le(1).u16le(0x0B).bytes(d).u32le(2).u16le(0);
  }
  return std::move(w).take();
}

TEST(EventLogTest, StartupLocalitySetsPcr0InitialValue) {
  auto log = parse(startup_locality_log(3, false));
  ASSERT_TRUE(log) << log.error().message;
  auto r = replay(*log);
  ASSERT_TRUE(r);
  Bytes want(32, 0);
  want[31] = 3;
  EXPECT_EQ(*r->pcrs.get(TpmAlg::kSha256, 0), want);

  auto log2 = parse(startup_locality_log(3, true));
  ASSERT_TRUE(log2);
  auto r2 = replay(*log2);
  ASSERT_TRUE(r2);
  Bytes cat = want;
  cat.resize(64, 0xab);
  EXPECT_EQ(*r2->pcrs.get(TpmAlg::kSha256, 0), ossl::sha256(cat));
}

TEST(EventLogTest, StopsAtAllZeroPadding) {
  Bytes log = read_all(kDir / "event.bin");
  auto base = parse(log);
  ASSERT_TRUE(base);
  log.resize(log.size() + 4096, 0);
  auto padded = parse(log);
  ASSERT_TRUE(padded) << padded.error().message;
  EXPECT_EQ(padded->events.size(), base->events.size());
}

TEST(EventLogTest, TruncationsNeverCrashAndNameTheOffset) {
  for (const char* name : {"event-arch-linux.bin", "event-uefi-sha1-log.bin",
                           "specid-vendordata.bin", "event-sd-boot-fedora37.bin"}) {
    const Bytes full = read_all(kDir / name);
    for (std::size_t n = 0; n < full.size(); ++n) {
      ByteSpan cut(full.data(), n);
      auto strict = parse(cut);
      if (!strict) {
        EXPECT_NE(strict.error().message.find("offset"), std::string::npos);
      }
      auto lenient = parse(cut, ParseOptions{.best_effort = true});
      if (lenient) (void)replay(*lenient);
    }
  }
}

TEST(EventLogTest, TruncatedLogBestEffortWarns) {
  Bytes full = read_all(kDir / "event-arch-linux.bin");
  full.resize(full.size() - 10);
  auto strict = parse(full);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code, ErrorCode::kMalformed);
  auto lenient = parse(full, ParseOptions{.best_effort = true});
  ASSERT_TRUE(lenient);
  ASSERT_EQ(lenient->warnings.size(), 1u);
  EXPECT_NE(lenient->warnings[0].find("offset"), std::string::npos);
}

TEST(EventLogTest, ReplayVsQuoteListsDifferingPcrs) {
  auto log = parse(read_all(kDir / "event-arch-linux.bin"));
  ASSERT_TRUE(log);
  auto r = replay(*log);
  ASSERT_TRUE(r);
  auto sel = PcrSelection::parse("sha256:0,1,7");
  ASSERT_TRUE(sel);
  auto digest = pcr_composite_digest(*sel, r->pcrs, ossl::Hash::kSha256);
  ASSERT_TRUE(digest);
  EXPECT_TRUE(check_replay_against_quote(r->pcrs, *sel, *digest, ossl::Hash::kSha256));

  PcrValues reported = r->pcrs;
  ASSERT_TRUE(reported.extend(TpmAlg::kSha256, 7, Bytes(32, 1)));
  auto quoted = pcr_composite_digest(*sel, reported, ossl::Hash::kSha256);
  auto st = check_replay_against_quote(r->pcrs, *sel, *quoted, ossl::Hash::kSha256, &reported);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kReplayMismatch);
  EXPECT_NE(st.error().message.find("differ: sha256:7 ("), std::string::npos) << st.error().message;
  EXPECT_EQ(st.error().message.find("sha256:0 ("), std::string::npos);
}

}  // namespace
}  // namespace warden::attest::eventlog
