#include "platform/base/openssl.h"

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::ossl {
namespace {

TEST(Openssl, DigestsMatchKnownVectors) {
  EXPECT_EQ(hex_encode(sha256(to_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_encode(*digest(Hash::kSha1, to_bytes("abc"))),
            "a9993e364706816aba3e25717850c26c9cd0d89d");
  auto h = Hasher::create(Hash::kSha256);
  ASSERT_TRUE(h);
  h->update(to_bytes("a")).update(to_bytes("bc"));
  EXPECT_EQ(h->finish(), sha256(to_bytes("abc")));
}

TEST(Openssl, HmacMatchesRfc4231Case2) {
  auto mac = hmac(Hash::kSha256, to_bytes("Jefe"), to_bytes("what do ya want for nothing?"));
  ASSERT_TRUE(mac);
  EXPECT_EQ(hex_encode(*mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Openssl, EcdsaRawAndDerConvertBothWays) {
  Bytes r(32, 0x01);
  Bytes s(32, 0x00);
  s[31] = 0x05;  // short s: DER drops leading zeros, raw must pad them back
  auto der = ecdsa_raw_to_der(r, s);
  ASSERT_TRUE(der);
  auto raw = ecdsa_der_to_raw(*der, 32);
  ASSERT_TRUE(raw);
  Bytes expected = r;
  expected.insert(expected.end(), s.begin(), s.end());
  EXPECT_EQ(*raw, expected);
  EXPECT_FALSE(ecdsa_der_to_raw(to_bytes("garbage"), 32));
}

// The short-form encoder must produce exactly OpenSSL's DER, for every shape of r and s (leading
// zeros, a high bit that needs a 0x00, zero itself, P-256/P-384/P-521 sizes).
TEST(Openssl, EcdsaRawToDerMatchesOpenssl) {
  auto openssl_der = [](const Bytes& r, const Bytes& s) {
    EcdsaSig sig(ECDSA_SIG_new());
    BIGNUM* br = BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr);
    BIGNUM* bs = BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr);
    EXPECT_EQ(ECDSA_SIG_set0(sig.get(), br, bs), 1);
    int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    Bytes out(static_cast<std::size_t>(len));
    unsigned char* p = out.data();
    i2d_ECDSA_SIG(sig.get(), &p);
    return out;
  };
  std::vector<Bytes> values;
  for (std::size_t size : {32U, 48U, 66U}) {
    Bytes v(size, 0x00);
    values.push_back(v);  // zero
    v.back() = 0x01;
    values.push_back(v);  // mostly leading zeros
    v[size / 2] = 0x80;
    values.push_back(v);  // high bit after stripping
    Bytes high(size, 0xff);
    values.push_back(high);  // needs the 0x00
    Bytes low(size, 0x7f);
    values.push_back(low);
    Bytes random_value(size);
    for (std::size_t i = 0; i < size; ++i) random_value[i] = static_cast<std::uint8_t>(i * 37 + 11);
    values.push_back(random_value);
  }
  for (const auto& r : values) {
    for (const auto& s : values) {
      if (r.size() != s.size()) continue;
      auto der = ecdsa_raw_to_der(r, s);
      ASSERT_TRUE(der) << der.error().message;
      EXPECT_EQ(hex_encode(*der), hex_encode(openssl_der(r, s))) << r.size();
    }
  }
}

TEST(Openssl, ErrorsCarryTheQueue) {
  auto key = public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, ErrorCode::kMalformed);
  EXPECT_NE(key.error().message.find("parse PEM public key"), std::string::npos);
}

TEST(Openssl, ConstantTimeCompare) {
  EXPECT_TRUE(equal_ct(to_bytes("abc"), to_bytes("abc")));
  EXPECT_FALSE(equal_ct(to_bytes("abc"), to_bytes("abd")));
  EXPECT_FALSE(equal_ct(to_bytes("abc"), to_bytes("ab")));
}

}  // namespace
}  // namespace warden::ossl
