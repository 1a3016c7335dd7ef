#include "platform/base/cbor.h"

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::cbor {
namespace {

Bytes hex(std::string_view s) { return *hex_decode(s); }

TEST(Cbor, EncodesShortestForms) {
  EXPECT_EQ(hex_encode(encode(Value::uint(23))), "17");
  EXPECT_EQ(hex_encode(encode(Value::uint(24))), "1818");
  EXPECT_EQ(hex_encode(encode(Value::uint(1000))), "1903e8");
  EXPECT_EQ(hex_encode(encode(Value::integer(-7))), "26");
  EXPECT_EQ(hex_encode(encode(Value::integer(-257))), "390100");
  EXPECT_EQ(hex_encode(encode(Value::map({{Value::uint(1), Value::integer(-7)}}))), "a10126");
}

TEST(Cbor, RoundTripsNestedValues) {
  Value v =
      Value::tag(18, Value::array({Value::bytes(hex("a10126")), Value::map(),
                                   Value::text("payload"), Value::boolean(true), Value::null()}));
  Bytes encoded = encode(v);
  auto decoded = decode(encoded);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, v);
}

TEST(Cbor, DecodesOneByteTagsThatLibcborRejects) {
  // 0xd2 = tag 18 (COSE_Sign1); Debian's libcbor 0.8 refuses it in cbor_load.
  auto v = decode(hex("d28440a04040"));
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->tag_number(), 18U);
  EXPECT_EQ(v->tag_content()->items().size(), 4U);
}

TEST(Cbor, RefusesHugeDeclaredLengthsWithoutAllocating) {
  // A 9-byte array header declaring 2^64-1 elements: cbor_load would try to allocate it.
  auto v = decode(hex("9bffffffffffffffff"));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kLimitExceeded);
  auto s = decode(hex("5bffffffffffffffff00"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kMalformed);
}

TEST(Cbor, RefusesIndefiniteLengthsDepthAndTrailingBytes) {
  EXPECT_EQ(decode(hex("9f01ff")).error().code, ErrorCode::kUnsupported);
  Bytes deep(40, 0x81);
  deep.push_back(0x01);
  EXPECT_EQ(decode(deep).error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(decode(hex("0101")).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decode(hex("")).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decode(hex("1a0000")).error().code, ErrorCode::kMalformed);
}

TEST(Cbor, MapLookupByIntAndText) {
  auto v = decode(hex("a201636973730a6474797065"));  // {1: "iss", 10: "type"}
  ASSERT_TRUE(v);
  EXPECT_EQ(*v->find(1)->as_text(), "iss");
  EXPECT_EQ(v->find(2), nullptr);
  Value m = Value::map();
  m.put(Value::text("idx"), Value::uint(7));
  EXPECT_EQ(*m.find("idx")->as_uint(), 7U);
}

}  // namespace
}  // namespace warden::cbor
