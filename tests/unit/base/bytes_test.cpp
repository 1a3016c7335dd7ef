#include "platform/base/bytes.h"

#include <gtest/gtest.h>

namespace warden {
namespace {

TEST(ByteReader, ReadsBigAndLittleEndian) {
  Bytes data = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
  ByteReader r(data);
  EXPECT_EQ(*r.u16be("a"), 0x0102);
  EXPECT_EQ(*r.u32le("b"), 0x06050403U);
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(r.expect_end());
}

TEST(ByteReader, ShortReadNamesFieldAndOffset) {
  Bytes data = {0x00, 0x10, 0xaa};
  ByteReader r(data, "TPMS_ATTEST");
  auto b = r.tpm2b("extraData");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(b.error().message, "TPMS_ATTEST: extraData at offset 2: needs 16 bytes, 1 left");
}

TEST(ByteReader, Tpm2bRefusesSizeAboveMaximum) {
  Bytes data = {0x00, 0x03, 1, 2, 3};
  ByteReader r(data);
  EXPECT_FALSE(r.tpm2b("nonce", 2));
}

TEST(ByteReader, TrailingBytesAreAnError) {
  Bytes data = {1, 2};
  ByteReader r(data);
  ASSERT_TRUE(r.u8("x"));
  EXPECT_FALSE(r.expect_end());
}

TEST(ByteWriter, WritesTpmWireFormat) {
  ByteWriter w;
  Bytes payload = {0xab};
  w.u32be(0xff544347).tpm2b(payload).u16le(0x1234);
  Bytes expected = {0xff, 0x54, 0x43, 0x47, 0x00, 0x01, 0xab, 0x34, 0x12};
  EXPECT_EQ(w.data(), expected);
}

}  // namespace
}  // namespace warden
