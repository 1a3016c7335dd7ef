#include "attest/credential/credential.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

namespace warden::attest::credential {
namespace {

#define WARDEN_ASSIGN(var, expr)              \
  auto var##_r = (expr);                      \
  if (!var##_r) return fail(var##_r.error()); \
  auto var = std::move(*var##_r)

Result<Bytes> aes_cfb_encrypt(ByteSpan key, ByteSpan plain) {
  const EVP_CIPHER* cipher = nullptr;
  switch (key.size()) {
    case 16:
      cipher = EVP_aes_128_cfb128();
      break;
    case 24:
      cipher = EVP_aes_192_cfb128();
      break;
    case 32:
      cipher = EVP_aes_256_cfb128();
      break;
    default:
      return fail(ErrorCode::kUnsupported,
                  "MakeCredential: AES key of " + std::to_string(key.size()) + " bytes");
  }
  const std::uint8_t iv[16] = {};
  ossl::CipherCtx ctx(EVP_CIPHER_CTX_new());
  Bytes out(plain.size() + 16);
  int len = 0, fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, key.data(), iv) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, plain.data(),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1)
    return fail(ossl::error("AES-CFB encrypt"));
  out.resize(static_cast<std::size_t>(len + fin));
  return out;
}

struct Seed {
  Bytes seed;
  Bytes encrypted;  // TPM2B_ENCRYPTED_SECRET contents
};

Result<Seed> rsa_seed(const quote::PublicArea& ek, ossl::Hash hash, Random& random) {
  Seed s;
  s.seed.resize(ossl::digest_size(hash));
  random.fill(s.seed);
  WARDEN_ASSIGN(pkey, quote::public_key(ek));
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  static const char kLabel[] = "IDENTITY";  // sizeof includes the NUL: 9 bytes
  void* label = OPENSSL_memdup(kLabel, sizeof kLabel);
  if (!ctx || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), ossl::evp_md(hash)) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), ossl::evp_md(hash)) != 1) {
    OPENSSL_free(label);
    return fail(ossl::error("RSA-OAEP init"));
  }
  if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof kLabel) != 1) {
    OPENSSL_free(label);
    return fail(ossl::error("RSA-OAEP label"));
  }
  std::size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, s.seed.data(), s.seed.size()) != 1)
    return fail(ossl::error("RSA-OAEP size"));
  s.encrypted.resize(len);
  if (EVP_PKEY_encrypt(ctx.get(), s.encrypted.data(), &len, s.seed.data(), s.seed.size()) != 1)
    return fail(ossl::error("RSA-OAEP encrypt"));
  s.encrypted.resize(len);
  return s;
}

Bytes bn_fixed(const BIGNUM* bn, std::size_t size) {
  Bytes out(size);
  BN_bn2binpad(bn, out.data(), static_cast<int>(size));
  return out;
}

Result<Seed> ecc_seed(const quote::PublicArea& ek, ossl::Hash hash, Random& random) {
  int nid = 0;
  std::size_t field = 0;
  switch (ek.curve) {
    case quote::kEccNistP256:
      nid = NID_X9_62_prime256v1;
      field = 32;
      break;
    case quote::kEccNistP384:
      nid = NID_secp384r1;
      field = 48;
      break;
    case quote::kEccNistP521:
      nid = NID_secp521r1;
      field = 66;
      break;
    default:
      return fail(ErrorCode::kUnsupported, "MakeCredential: EK curve unsupported");
  }
  WARDEN_TRY_STATUS([&]() -> Status {
    auto k = quote::public_key(ek);  // validates the point is on the curve
    if (!k) return fail(k.error());
    return ok();
  }());
  ossl::EcGroup group(EC_GROUP_new_by_curve_name(nid));
  ossl::BnCtx bctx(BN_CTX_new());
  if (!group || !bctx) return fail(ossl::error("EC group"));
  ossl::Bn x(BN_bin2bn(ek.ecc_x.data(), static_cast<int>(ek.ecc_x.size()), nullptr));
  ossl::Bn y(BN_bin2bn(ek.ecc_y.data(), static_cast<int>(ek.ecc_y.size()), nullptr));
  ossl::EcPoint q_ek(EC_POINT_new(group.get()));
  if (!x || !y || !q_ek ||
      EC_POINT_set_affine_coordinates(group.get(), q_ek.get(), x.get(), y.get(), bctx.get()) != 1)
    return fail(ErrorCode::kMalformed, "MakeCredential: EK point invalid");
  // Ephemeral scalar d in [1, n-1] from field+8 random bytes (bias < 2^-64).
  Bytes rnd(field + 8);
  random.fill(rnd);
  ossl::Bn d(BN_bin2bn(rnd.data(), static_cast<int>(rnd.size()), nullptr));
  ossl::Bn n_minus_1(BN_dup(EC_GROUP_get0_order(group.get())));
  if (!d || !n_minus_1 || BN_sub_word(n_minus_1.get(), 1) != 1 ||
      BN_nnmod(d.get(), d.get(), n_minus_1.get(), bctx.get()) != 1 || BN_add_word(d.get(), 1) != 1)
    return fail(ossl::error("ephemeral scalar"));
  ossl::EcPoint q_e(EC_POINT_new(group.get()));
  ossl::EcPoint shared(EC_POINT_new(group.get()));
  ossl::Bn qex(BN_new()), qey(BN_new()), zx(BN_new()), zy(BN_new());
  if (!q_e || !shared || !qex || !qey || !zx || !zy ||
      EC_POINT_mul(group.get(), q_e.get(), d.get(), nullptr, nullptr, bctx.get()) != 1 ||
      EC_POINT_mul(group.get(), shared.get(), nullptr, q_ek.get(), d.get(), bctx.get()) != 1 ||
      EC_POINT_get_affine_coordinates(group.get(), q_e.get(), qex.get(), qey.get(), bctx.get()) !=
          1 ||
      EC_POINT_get_affine_coordinates(group.get(), shared.get(), zx.get(), zy.get(), bctx.get()) !=
          1)
    return fail(ossl::error("ECDH"));
  BN_clear(d.get());
  const Bytes z = bn_fixed(zx.get(), field);
  const Bytes ex = bn_fixed(qex.get(), field);
  const Bytes ey = bn_fixed(qey.get(), field);
  const Bytes ek_x = bn_fixed(x.get(), field);
  Seed s;
  WARDEN_ASSIGN(seed, kdfe(hash, z, "IDENTITY", ex, ek_x, ossl::digest_size(hash) * 8));
  s.seed = std::move(seed);
  ByteWriter w;
  w.tpm2b(ex).tpm2b(ey);
  s.encrypted = std::move(w).take();
  return s;
}

}  // namespace

Result<Bytes> kdfa(ossl::Hash hash, ByteSpan key, std::string_view label, ByteSpan context_u,
                   ByteSpan context_v, std::size_t bits) {
  Bytes out;
  const std::size_t want = (bits + 7) / 8;
  for (std::uint32_t i = 1; out.size() < want; ++i) {
    ByteWriter w;
    w.u32be(i).bytes(label).u8(0).bytes(context_u).bytes(context_v).u32be(
        static_cast<std::uint32_t>(bits));
    WARDEN_ASSIGN(block, ossl::hmac(hash, key, w.data()));
    out.insert(out.end(), block.begin(), block.end());
  }
  out.resize(want);
  return out;
}

Result<Bytes> kdfe(ossl::Hash hash, ByteSpan z, std::string_view label, ByteSpan party_u,
                   ByteSpan party_v, std::size_t bits) {
  Bytes out;
  const std::size_t want = (bits + 7) / 8;
  for (std::uint32_t i = 1; out.size() < want; ++i) {
    ByteWriter w;
    w.u32be(i).bytes(z).bytes(label).u8(0).bytes(party_u).bytes(party_v);
    WARDEN_ASSIGN(block, ossl::digest(hash, w.data()));
    out.insert(out.end(), block.begin(), block.end());
  }
  out.resize(want);
  return out;
}

Bytes Credential::tpm2_tools_file() const {
  ByteWriter w;
  w.u32be(0xBADCC0DE).u32be(1).bytes(id_object).bytes(encrypted_secret);
  return std::move(w).take();
}

Result<Credential> make_credential(const quote::PublicArea& ek, ByteSpan ak_name, ByteSpan secret,
                                   Random& random) {
  auto alg = hash_from_tpm_id(ek.name_alg);
  if (!alg) return fail(ErrorCode::kUnsupported, "MakeCredential: EK nameAlg unsupported");
  const ossl::Hash hash = to_ossl(*alg);
  const std::size_t hsize = ossl::digest_size(hash);
  if (secret.empty() || secret.size() > hsize)
    return fail(ErrorCode::kInvalidArgument,
                "MakeCredential: credential of " + std::to_string(secret.size()) +
                    " bytes, expected 1.." + std::to_string(hsize) + " (EK nameAlg digest size)");
  if (ek.symmetric != 0x0006 /*AES*/ || ek.symmetric_mode != 0x0043 /*CFB*/)
    return fail(ErrorCode::kUnsupported, "MakeCredential: EK symmetric must be AES-CFB");
  if (ak_name.size() < 2)
    return fail(ErrorCode::kInvalidArgument, "MakeCredential: AK name too short");
  Seed seed;
  if (ek.type == quote::kAlgRsa) {
    WARDEN_ASSIGN(s, rsa_seed(ek, hash, random));
    seed = std::move(s);
  } else if (ek.type == quote::kAlgEcc) {
    WARDEN_ASSIGN(s, ecc_seed(ek, hash, random));
    seed = std::move(s);
  } else {
    return fail(ErrorCode::kUnsupported, "MakeCredential: EK type unsupported");
  }
  WARDEN_ASSIGN(sym_key, kdfa(hash, seed.seed, "STORAGE", ak_name, {}, ek.symmetric_bits));
  ByteWriter plain;
  plain.tpm2b(secret);
  WARDEN_ASSIGN(enc_identity, aes_cfb_encrypt(sym_key, plain.data()));
  WARDEN_ASSIGN(hmac_key, kdfa(hash, seed.seed, "INTEGRITY", {}, {}, hsize * 8));
  ByteWriter mac_in;
  mac_in.bytes(enc_identity).bytes(ak_name);
  WARDEN_ASSIGN(outer_hmac, ossl::hmac(hash, hmac_key, mac_in.data()));
  ByteWriter id;
  id.u16be(static_cast<std::uint16_t>(2 + outer_hmac.size() + enc_identity.size()))
      .tpm2b(outer_hmac)
      .bytes(enc_identity);
  ByteWriter es;
  es.tpm2b(seed.encrypted);
  return Credential{std::move(id).take(), std::move(es).take()};
}

}  // namespace warden::attest::credential
