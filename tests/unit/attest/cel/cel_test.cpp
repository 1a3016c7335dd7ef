#include "attest/cel/cel.h"

#include <gtest/gtest.h>

#include "platform/base/openssl.h"

namespace warden::attest::cel {
namespace {

constexpr TpmAlg kBanks[] = {TpmAlg::kSha1, TpmAlg::kSha256};

ContainerContent nginx(ContainerEvent ev) {
  return {ev,
          "4f2a9c1d",
          "docker.io/library/nginx:1.25",
          "sha256:" + std::string(64, 'a'),
          "runc",
          "/system.slice/docker-4f2a9c1d.scope"};
}

std::vector<Record> sample_log() {
  std::vector<Record> log;
  log.push_back(*make_record(0, nginx(ContainerEvent::kStart), kBanks));
  log.push_back(*make_record(1, nginx(ContainerEvent::kStop), kBanks));
  return log;
}

PcrValues zero_banks() {
  PcrValues p;
  p.init_bank(TpmAlg::kSha1);
  p.init_bank(TpmAlg::kSha256);
  return p;
}

TEST(Cel, RoundTrip) {
  auto log = sample_log();
  Bytes encoded = encode(log);
  auto back = decode(encoded);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, log);
  EXPECT_EQ(encode(*back), encoded);
}

TEST(Cel, ReplayEqualsManualExtend) {
  auto log = sample_log();
  auto r = replay(log, zero_banks());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->problems.empty());
  PcrValues manual = zero_banks();
  for (const Record& rec : log) {
    Bytes content = encode_content(rec.content);
    ASSERT_TRUE(manual.extend(TpmAlg::kSha256, 15, ossl::sha256(content)));
    ASSERT_TRUE(manual.extend(TpmAlg::kSha1, 15, *ossl::digest(ossl::Hash::kSha1, content)));
  }
  EXPECT_EQ(r->pcrs, manual);
}

TEST(Cel, AlteredContentIsFlagged) {
  auto log = sample_log();
  log[1].content.image_ref = "evil.example/nginx:latest";
  auto r = replay(log, zero_banks());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->problems.size(), 2u);  // both banks
  EXPECT_NE(r->problems[0].find("does not match content digest"), std::string::npos);
}

TEST(Cel, RecnumGapAndWrongPcrAreFlagged) {
  auto log = sample_log();
  log[1].recnum = 5;
  log[0].pcr = 10;
  auto r = replay(log, zero_banks());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->problems.size(), 2u);
  EXPECT_NE(r->problems[0].find("expected container PCR 15"), std::string::npos);
  EXPECT_NE(r->problems[1].find("recnum 5"), std::string::npos);
}

TEST(Cel, GarbageRefusedWithReason) {
  const std::uint8_t junk[] = {0xff, 0x00, 0x13};
  auto a = decode(junk);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("CEL decode"), std::string::npos);
  auto not_array = decode(cbor::encode(cbor::Value::uint(3)));
  ASSERT_FALSE(not_array);
  EXPECT_NE(not_array.error().message.find("not a CBOR array"), std::string::npos);
  cbor::Value rec = cbor::Value::map();
  rec.put(cbor::Value::uint(0), cbor::Value::uint(0));
  rec.put(cbor::Value::uint(1), cbor::Value::uint(15));
  rec.put(cbor::Value::uint(3), cbor::Value::array({cbor::Value::array(
                                    {cbor::Value::uint(0xB), cbor::Value::bytes(Bytes(5, 0))})}));
  auto bad_digest = decode(cbor::encode(cbor::Value::array({rec})));
  ASSERT_FALSE(bad_digest);
  EXPECT_NE(bad_digest.error().message.find("record 0"), std::string::npos);
  EXPECT_NE(bad_digest.error().message.find("size 5"), std::string::npos);
}

}  // namespace
}  // namespace warden::attest::cel
