#include <cstring>

#include <tss2/tss2_mu.h>

#include "platform/base/openssl.h"
#include "platform/tpm/objects.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::Handle;
using detail::tpm_error;

namespace {

TPM2B_PUBLIC binding_template() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = 0x00040072;  // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign
  auto& e = p.parameters.eccDetail;
  e.symmetric.algorithm = TPM2_ALG_NULL;
  e.scheme.scheme = TPM2_ALG_ECDSA;
  e.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  e.curveID = TPM2_ECC_NIST_P256;
  e.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

/// Loads the binding key under a fresh SRK and flushes the SRK.
Result<Handle> load_binding_key(ESYS_CONTEXT* ctx, const BindingKey& key) {
  auto srk = detail::create_srk(ctx);
  if (!srk) return fail(srk.error());
  auto handle = detail::load(ctx, srk->get(), ESYS_TR_PASSWORD, key.public_area, key.private_area);
  if (!handle) return fail(handle.error().context("load binding key"));
  return handle;
}

Bytes left_pad(const TPM2B_ECC_PARAMETER& p, std::size_t size) {
  Bytes out(size, 0);
  std::size_t n = std::min<std::size_t>(p.size, size);
  std::memcpy(out.data() + size - n, p.buffer + p.size - n, n);
  return out;
}

}  // namespace

Result<std::string> BindingKey::public_key_pem() const {
  auto der = detail::public_key_der(public_area);
  if (!der) return fail(der.error());
  auto key = ossl::public_key_from_der(*der);
  if (!key) return fail(key.error());
  return ossl::public_key_to_pem(key->get());
}

Result<BindingKey> Tpm::create_binding_key(const AkBlob& ak, ByteSpan qualifying_data) const {
  if (qualifying_data.size() > 64) {
    return fail(ErrorCode::kInvalidArgument,
                "create binding key: qualifying data of at most 64 "
                "bytes expected, got " +
                    std::to_string(qualifying_data.size()));
  }
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  BindingKey key;
  {
    auto srk = detail::create_srk(ctx->get());
    if (!srk) return fail(srk.error().context("create binding key"));
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_PUBLIC in_public = binding_template();
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_PRIVATE* out_private = nullptr;
    TPM2B_PUBLIC* out_public = nullptr;
    TSS2_RC rc = Esys_Create(ctx->get(), srk->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                             &sensitive, &in_public, &outside, &pcrs, &out_private, &out_public,
                             nullptr, nullptr, nullptr);
    EsysPtr<TPM2B_PRIVATE> owned_private(out_private);
    EsysPtr<TPM2B_PUBLIC> owned_public(out_public);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("create binding key: TPM2_Create", rc));
    auto pub = detail::marshal("TPM2B_PUBLIC", *out_public, Tss2_MU_TPM2B_PUBLIC_Marshal);
    if (!pub) return fail(pub.error());
    auto priv = detail::marshal("TPM2B_PRIVATE", *out_private, Tss2_MU_TPM2B_PRIVATE_Marshal);
    if (!priv) return fail(priv.error());
    key.public_area = std::move(*pub);
    key.private_area = std::move(*priv);
  }
  auto key_handle = load_binding_key(ctx->get(), key);
  if (!key_handle) return fail(key_handle.error().context("create binding key"));
  auto ak_handle = detail::load_ak(ctx->get(), ak);
  if (!ak_handle) return fail(ak_handle.error().context("certify binding key"));
  TPM2B_DATA qualifying{};
  qualifying.size = static_cast<std::uint16_t>(qualifying_data.size());
  if (!qualifying_data.empty()) {
    std::memcpy(qualifying.buffer, qualifying_data.data(), qualifying_data.size());
  }
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;
  TPM2B_ATTEST* certify_info = nullptr;
  TPMT_SIGNATURE* signature = nullptr;
  TSS2_RC rc =
      Esys_Certify(ctx->get(), key_handle->get(), ak_handle->get(), ESYS_TR_PASSWORD,
                   ESYS_TR_PASSWORD, ESYS_TR_NONE, &qualifying, &scheme, &certify_info, &signature);
  EsysPtr<TPM2B_ATTEST> owned_info(certify_info);
  EsysPtr<TPMT_SIGNATURE> owned_signature(signature);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_Certify", rc));
  key.certify_attest.assign(certify_info->attestationData,
                            certify_info->attestationData + certify_info->size);
  auto sig = detail::marshal_signature(*signature);
  if (!sig) return fail(sig.error());
  key.certify_signature = std::move(*sig);
  return key;
}

Result<Signature> Tpm::sign(const BindingKey& key, ByteSpan digest) const {
  if (digest.size() != 32) {
    return fail(ErrorCode::kInvalidArgument,
                "sign: expected a 32-byte SHA-256 digest, got " + std::to_string(digest.size()));
  }
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto handle = load_binding_key(ctx->get(), key);
  if (!handle) return fail(handle.error().context("sign"));
  TPM2B_DIGEST in{};
  in.size = 32;
  std::memcpy(in.buffer, digest.data(), 32);
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_ECDSA;
  scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  TPMT_TK_HASHCHECK validation{};
  validation.tag = TPM2_ST_HASHCHECK;
  validation.hierarchy = TPM2_RH_NULL;
  TPMT_SIGNATURE* signature = nullptr;
  TSS2_RC rc = Esys_Sign(ctx->get(), handle->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &in, &scheme, &validation, &signature);
  EsysPtr<TPMT_SIGNATURE> owned(signature);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_Sign", rc));
  if (signature->sigAlg != TPM2_ALG_ECDSA) {
    return fail(ErrorCode::kTpm, "TPM2_Sign: expected an ECDSA signature, got algorithm " +
                                     std::to_string(signature->sigAlg));
  }
  Signature out;
  Bytes r = left_pad(signature->signature.ecdsa.signatureR, 32);
  Bytes s = left_pad(signature->signature.ecdsa.signatureS, 32);
  auto der = ossl::ecdsa_raw_to_der(r, s);
  if (!der) return fail(der.error());
  out.der = std::move(*der);
  out.raw = r;
  out.raw.insert(out.raw.end(), s.begin(), s.end());
  return out;
}

}  // namespace warden::tpm
