#include "attest/token/signer.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "platform/base/secret.h"

namespace warden::token {

Result<EcSigner> EcSigner::wrap(ossl::PKey key, std::string kid) {
  auto pub = Jwk::from_pkey(key.get());
  if (!pub) return fail(pub.error());
  if (pub->kty() != "EC" || pub->crv() != "P-256") {
    return fail(ErrorCode::kUnsupported,
                "signer: expected an EC P-256 key, found " + pub->kty() + " " + pub->crv());
  }
  pub->set_kid(kid.empty() ? pub->thumbprint() : std::move(kid));
  pub->set_alg(Alg::kEs256);
  return EcSigner(std::move(key), std::move(*pub));
}

Result<EcSigner> EcSigner::generate(Random& random, std::string kid) {
  ossl::EcGroup group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  ossl::BnCtx bn_ctx(BN_CTX_new());
  if (!group || !bn_ctx) return fail(ossl::error("signer: P-256 group"));
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  ossl::Bn d(BN_new());
  for (int attempt = 0;; ++attempt) {
    if (attempt == 64)
      return fail(ErrorCode::kCrypto, "signer: random source gives no valid scalar");
    SecretBytes scalar(32);
    random.fill(std::span<std::uint8_t>(scalar.data(), 32));
    if (BN_bin2bn(scalar.data(), 32, d.get()) == nullptr)
      return fail(ossl::error("signer: scalar"));
    if (!BN_is_zero(d.get()) && BN_cmp(d.get(), order) < 0) break;
  }
  ossl::EcPoint q(EC_POINT_new(group.get()));
  Bytes point(65);
  if (!q || EC_POINT_mul(group.get(), q.get(), d.get(), nullptr, nullptr, bn_ctx.get()) != 1 ||
      EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, point.data(),
                         point.size(), bn_ctx.get()) != point.size()) {
    return fail(ossl::error("signer: public point"));
  }
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) != 1) {
    return fail(ossl::error("signer: key params"));
  }
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  ossl::PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return fail(ossl::error("signer: build key"));
  }
  BN_clear(d.get());
  return wrap(ossl::PKey(raw), std::move(kid));
}

Result<EcSigner> EcSigner::from_pem(std::string_view pem, std::string kid) {
  auto key = ossl::private_key_from_pem(pem);
  if (!key) return fail(key.error().context("signer"));
  return wrap(std::move(*key), std::move(kid));
}

Result<Bytes> EcSigner::sign(ByteSpan signing_input) {
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, ossl::evp_md(ossl::Hash::kSha256), nullptr,
                         key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, signing_input.data(), signing_input.size()) != 1) {
    return fail(ossl::error("signer: sign"));
  }
  Bytes der(len);
  if (EVP_DigestSign(ctx.get(), der.data(), &len, signing_input.data(), signing_input.size()) !=
      1) {
    return fail(ossl::error("signer: sign"));
  }
  der.resize(len);
  return ossl::ecdsa_der_to_raw(der, 32);
}

Result<std::string> EcSigner::private_key_pem() const {
  ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail(ossl::error("signer: export key"));
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace warden::token
