#include "issuer/nonce.h"

#include <gtest/gtest.h>

namespace warden::issuer {
namespace {

class CountingRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = next_++;
  }

 private:
  std::uint8_t next_ = 1;
};

SecretBytes key(std::uint8_t fill) { return SecretBytes(Bytes(32, fill)); }

TEST(NonceIssuer, MintedNonceChecksForItsDeviceOnly) {
  FakeClock clock;
  CountingRandom random;
  NonceIssuer issuer(key(7), clock, random, 60);
  Bytes n = issuer.mint("device-a");
  ASSERT_EQ(n.size(), NonceIssuer::kSize);
  EXPECT_TRUE(issuer.check(n, "device-a"));
  EXPECT_EQ(issuer.check(n, "device-b").error().code, ErrorCode::kBadSignature);
  EXPECT_NE(issuer.mint("device-a"), n);
}

TEST(NonceIssuer, AnotherReplicaWithTheSameKeyAccepts) {
  FakeClock clock;
  CountingRandom random;
  NonceIssuer a(key(7), clock, random, 60);
  NonceIssuer b(key(7), clock, random, 60);
  NonceIssuer other(key(8), clock, random, 60);
  Bytes n = a.mint("d");
  EXPECT_TRUE(b.check(n, "d"));
  EXPECT_FALSE(other.check(n, "d"));
}

TEST(NonceIssuer, ExpiresAfterTtlAndRejectsTampering) {
  FakeClock clock;
  CountingRandom random;
  NonceIssuer issuer(key(7), clock, random, 60);
  Bytes n = issuer.mint("d");
  clock.advance(std::chrono::seconds(61));
  EXPECT_EQ(issuer.check(n, "d").error().code, ErrorCode::kExpired);
  clock.advance(std::chrono::seconds(-61));
  n[13] ^= 1;  // move the expiry
  EXPECT_EQ(issuer.check(n, "d").error().code, ErrorCode::kBadSignature);
  EXPECT_EQ(issuer.check(Bytes(5, 0), "d").error().code, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace warden::issuer
