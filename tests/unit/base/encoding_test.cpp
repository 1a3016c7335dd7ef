#include "platform/base/encoding.h"

#include <gtest/gtest.h>

namespace warden {
namespace {

TEST(Hex, RoundTripsAndAcceptsPrefix) {
  Bytes data = {0x00, 0xde, 0xad, 0xbe, 0xef};
  EXPECT_EQ(hex_encode(data), "00deadbeef");
  EXPECT_EQ(*hex_decode("0x00DEADbeef"), data);
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
}

TEST(Base64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(to_bytes("foob")), "Zm9vYg==");
  EXPECT_EQ(base64url_encode(to_bytes("foob")), "Zm9vYg");
  EXPECT_EQ(*base64_decode("Zm9vYmE="), to_bytes("fooba"));
  EXPECT_EQ(*base64url_decode("Zm9vYmFy"), to_bytes("foobar"));
}

TEST(Base64Url, RejectsPaddingStandardAlphabetAndNonCanonicalBits) {
  EXPECT_FALSE(base64url_decode("Zm9vYg=="));
  EXPECT_FALSE(base64url_decode("a+b/"));
  EXPECT_FALSE(base64url_decode("Zm9vYh"));  // trailing bits not zero
  EXPECT_FALSE(base64url_decode("A"));
  Bytes jose = {0xfb, 0xff};
  EXPECT_EQ(base64url_encode(jose), "-_8");
}

}  // namespace
}  // namespace warden
