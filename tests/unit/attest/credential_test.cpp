#include "attest/credential/credential.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "platform/base/encoding.h"

namespace warden::attest::credential {
namespace {

class CountingRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    for (auto& b : out) b = next_++;
  }

 private:
  std::uint8_t next_ = 1;
};

// An ECC P-256 EK-like public area (L-2 template parameters) around the fixture AK's point.
quote::PublicArea p256_ek() {
  std::ifstream in(std::filesystem::path(WARDEN_TESTDATA_DIR) / "quote" / "ak_ecc.pub",
                   std::ios::binary);
  Bytes raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto ak = quote::parse_public(raw);
  EXPECT_TRUE(ak);
  quote::PublicArea ek = *ak;
  ek.symmetric = 0x0006;
  ek.symmetric_bits = 128;
  ek.symmetric_mode = 0x0043;
  ek.scheme = quote::kAlgNull;
  return ek;
}

TEST(CredentialTest, KdfaIsDeterministicAndTruncates) {
  const Bytes key(32, 7);
  auto a = kdfa(ossl::Hash::kSha256, key, "STORAGE", to_bytes("name"), {}, 128);
  auto b = kdfa(ossl::Hash::kSha256, key, "STORAGE", to_bytes("name"), {}, 384);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 16u);
  EXPECT_EQ(b->size(), 48u);
  // The bit count is part of each block's input, so a shorter output is not a prefix.
  EXPECT_NE(Bytes(b->begin(), b->begin() + 16), *a);
}

TEST(CredentialTest, EccCredentialLayoutAndDeterminism) {
  const auto ek = p256_ek();
  const Bytes name = *hex_decode("000b" + std::string(64, 'a'));
  const Bytes secret(32, 0x42);
  CountingRandom r1, r2;
  auto c1 = make_credential(ek, name, secret, r1);
  auto c2 = make_credential(ek, name, secret, r2);
  ASSERT_TRUE(c1) << c1.error().message;
  ASSERT_TRUE(c2);
  EXPECT_EQ(c1->id_object, c2->id_object);  // same randomness, same output
  // TPM2B_ID_OBJECT: size | TPM2B hmac(32) | encIdentity(2 + 32)
  ASSERT_EQ(c1->id_object.size(), 2u + 2 + 32 + 34);
  EXPECT_EQ(c1->id_object[0] * 256 + c1->id_object[1], 2 + 32 + 34);
  // TPM2B_ENCRYPTED_SECRET: size | TPMS_ECC_POINT (2+32, 2+32)
  EXPECT_EQ(c1->encrypted_secret.size(), 2u + 68);
  const Bytes file = c1->tpm2_tools_file();
  EXPECT_EQ(hex_encode(ByteSpan(file).first(8)), "badcc0de00000001");
}

TEST(CredentialTest, RejectsOversizedSecret) {
  CountingRandom r;
  auto c = make_credential(p256_ek(), *hex_decode("000b00"), Bytes(33, 1), r);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace warden::attest::credential
