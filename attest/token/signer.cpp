#include "attest/token/signer.h"

#include <array>

#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "platform/base/secret.h"

namespace warden::token {

Result<EcSigner> EcSigner::wrap(std::shared_ptr<EVP_PKEY> key, std::string kid) {
  if (!key) return fail(ErrorCode::kInvalidArgument, "signer: expected a key, found none");
  auto pub = Jwk::from_pkey(key.get());
  if (!pub) return fail(pub.error());
  if (pub->kty() != "EC" || pub->crv() != "P-256") {
    return fail(ErrorCode::kUnsupported,
                "signer: expected an EC P-256 key, found " + pub->kty() + " " + pub->crv());
  }
  pub->set_kid(kid.empty() ? pub->thumbprint() : std::move(kid));
  pub->set_alg(Alg::kEs256);
  std::shared_ptr<EVP_MD_CTX> init(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!init || EVP_DigestSignInit(init.get(), nullptr, ossl::evp_md(ossl::Hash::kSha256), nullptr,
                                  key.get()) != 1)
    return fail(ossl::error("signer: EVP_DigestSignInit"));
  return EcSigner(std::move(key), std::move(init), std::move(*pub));
}

Result<EcSigner> EcSigner::from_key(std::shared_ptr<EVP_PKEY> key, std::string kid) {
  return wrap(std::move(key), std::move(kid));
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
  return wrap(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), std::move(kid));
}

Result<EcSigner> EcSigner::from_pem(std::string_view pem, std::string kid) {
  auto key = ossl::private_key_from_pem(pem);
  if (!key) return fail(key.error().context("signer"));
  return wrap(std::shared_ptr<EVP_PKEY>(std::move(*key)), std::move(kid));
}

Result<Bytes> EcSigner::sign(ByteSpan signing_input) {
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_MD_CTX_copy_ex(md.get(), init_.get()) != 1)
    return fail(ossl::error("signer: EVP_MD_CTX_copy_ex"));
  // One call with a buffer of the maximum size: asking for the length first hashes twice.
  std::array<unsigned char, 80> der{};  // a P-256 ECDSA-Sig-Value is at most 72 bytes
  std::size_t len = der.size();
  if (EVP_DigestSign(md.get(), der.data(), &len, signing_input.data(), signing_input.size()) != 1)
    return fail(ossl::error("signer: sign"));
  return ossl::ecdsa_der_to_raw(ByteSpan(der.data(), len), 32);
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
