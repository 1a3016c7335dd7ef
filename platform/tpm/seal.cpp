#include <cstring>

#include <tss2/tss2_mu.h>

#include "platform/tpm/objects.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::Handle;
using detail::tpm_error;

namespace {

constexpr std::string_view kSealMagic = "WSEAL";
constexpr std::uint8_t kSealVersion = 1;
constexpr std::size_t kMaxSealed = 128;

bool is_policy_fail(TSS2_RC rc) {
  // Format-one TPM response code, any session/parameter number.
  return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 &&
         (rc & 0x3F) == (TPM2_RC_POLICY_FAIL & 0x3F);
}

Status run_policy_pcr(ESYS_CONTEXT* ctx, ESYS_TR session, const TPML_PCR_SELECTION& pcrs) {
  TPM2B_DIGEST empty{};
  TSS2_RC rc =
      Esys_PolicyPCR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &pcrs);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyPCR", rc));
  return ok();
}

Result<TPM2B_DIGEST> pcr_policy_digest(ESYS_CONTEXT* ctx, const TPML_PCR_SELECTION& pcrs) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR trial = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, nullptr, TPM2_SE_TRIAL, &sym, TPM2_ALG_SHA256, &trial);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_StartAuthSession (trial)", rc));
  Handle session(ctx, trial, Handle::Kind::kFlush);
  WARDEN_TRY_STATUS(run_policy_pcr(ctx, trial, pcrs));
  TPM2B_DIGEST* digest = nullptr;
  rc = Esys_PolicyGetDigest(ctx, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
  EsysPtr<TPM2B_DIGEST> owned(digest);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyGetDigest", rc));
  return *digest;
}

}  // namespace

Bytes SealedBlob::serialize() const {
  auto tpml = detail::to_tpml(selection);
  Bytes sel;
  if (tpml) {
    sel = detail::marshal("TPML_PCR_SELECTION", *tpml, Tss2_MU_TPML_PCR_SELECTION_Marshal)
              .value_or(Bytes{});
  }
  ByteWriter w;
  w.bytes(kSealMagic).u8(kSealVersion).tpm2b(sel).tpm2b(public_area).tpm2b(private_area);
  return std::move(w).take();
}

Result<SealedBlob> SealedBlob::parse(ByteSpan data) {
  ByteReader r(data, "sealed blob");
  auto magic = r.bytes(kSealMagic.size(), "magic");
  if (!magic) return fail(magic.error());
  if (!std::equal(magic->begin(), magic->end(), kSealMagic.begin(), kSealMagic.end())) {
    return fail(ErrorCode::kMalformed, "sealed blob: expected magic \"WSEAL\"");
  }
  auto version = r.u8("version");
  if (!version) return fail(version.error());
  if (*version != kSealVersion) {
    return fail(ErrorCode::kUnsupported,
                "sealed blob: expected version 1, found " + std::to_string(*version));
  }
  auto sel = r.tpm2b("pcr selection");
  if (!sel) return fail(sel.error());
  auto pub = r.tpm2b("public");
  if (!pub) return fail(pub.error());
  auto priv = r.tpm2b("private");
  if (!priv) return fail(priv.error());
  WARDEN_TRY_STATUS(r.expect_end());
  auto tpml = detail::unmarshal<TPML_PCR_SELECTION>("TPML_PCR_SELECTION", *sel,
                                                    Tss2_MU_TPML_PCR_SELECTION_Unmarshal);
  if (!tpml) return fail(tpml.error().context("sealed blob"));
  SealedBlob blob;
  blob.selection = detail::from_tpml(*tpml);
  blob.public_area.assign(pub->begin(), pub->end());
  blob.private_area.assign(priv->begin(), priv->end());
  return blob;
}

Result<SealedBlob> Tpm::seal(const PcrSelection& selection, ByteSpan secret) const {
  if (secret.empty() || secret.size() > kMaxSealed) {
    return fail(ErrorCode::kInvalidArgument,
                "seal: expected 1..128 bytes of secret, got " + std::to_string(secret.size()));
  }
  if (selection.empty()) {
    return fail(ErrorCode::kInvalidArgument, "seal: expected a non-empty PCR selection");
  }
  auto tpml = detail::to_tpml(selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto srk = detail::create_srk(ctx->get());
  if (!srk) return fail(srk.error().context("seal"));
  auto policy = pcr_policy_digest(ctx->get(), *tpml);
  if (!policy) return fail(policy.error().context("seal"));
  // The SRK's authorisation session is salted to it and encrypts the secret (inSensitive).
  auto session = detail::salted_session(ctx->get(), srk->get(), TPM2_SE_HMAC,
                                        TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION);
  if (!session) return fail(session.error().context("seal"));

  TPM2B_SENSITIVE_CREATE sensitive{};
  sensitive.sensitive.data.size = static_cast<std::uint16_t>(secret.size());
  std::memcpy(sensitive.sensitive.data.buffer, secret.data(), secret.size());
  TPM2B_PUBLIC in_public{};
  TPMT_PUBLIC& p = in_public.publicArea;
  p.type = TPM2_ALG_KEYEDHASH;
  p.nameAlg = TPM2_ALG_SHA256;
  // fixedTPM|fixedParent|noDA; userWithAuth CLEAR so only the PCR policy authorises.
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
  p.authPolicy = *policy;
  p.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcrs{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = Esys_Create(ctx->get(), srk->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE,
                           &sensitive, &in_public, &outside, &creation_pcrs, &out_private,
                           &out_public, nullptr, nullptr, nullptr);
  OPENSSL_cleanse(&sensitive, sizeof sensitive);
  EsysPtr<TPM2B_PRIVATE> owned_private(out_private);
  EsysPtr<TPM2B_PUBLIC> owned_public(out_public);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal: TPM2_Create", rc));
  SealedBlob blob;
  blob.selection = selection;
  auto pub = detail::marshal("TPM2B_PUBLIC", *out_public, Tss2_MU_TPM2B_PUBLIC_Marshal);
  if (!pub) return fail(pub.error());
  auto priv = detail::marshal("TPM2B_PRIVATE", *out_private, Tss2_MU_TPM2B_PRIVATE_Marshal);
  if (!priv) return fail(priv.error());
  blob.public_area = std::move(*pub);
  blob.private_area = std::move(*priv);
  return blob;
}

Result<SecretBytes> Tpm::unseal(const SealedBlob& blob) const {
  auto tpml = detail::to_tpml(blob.selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto srk = detail::create_srk(ctx->get());
  if (!srk) return fail(srk.error().context("unseal"));
  auto object =
      detail::load(ctx->get(), srk->get(), ESYS_TR_PASSWORD, blob.public_area, blob.private_area);
  if (!object) return fail(object.error().context("unseal: load sealed object"));
  // Policy session salted to the SRK; ENCRYPT protects the secret in the Unseal response.
  auto session = detail::salted_session(ctx->get(), srk->get(), TPM2_SE_POLICY,
                                        TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION);
  if (!session) return fail(session.error().context("unseal"));
  srk->reset();
  WARDEN_TRY_STATUS(run_policy_pcr(ctx->get(), session->get(), *tpml));
  TPM2B_SENSITIVE_DATA* data = nullptr;
  TSS2_RC rc =
      Esys_Unseal(ctx->get(), object->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &data);
  EsysPtr<TPM2B_SENSITIVE_DATA> owned(data);
  if (is_policy_fail(rc)) {
    Error error = tpm_error("unseal: TPM2_Unseal", rc);
    error.code = ErrorCode::kPolicyViolation;
    error.message = "unseal: PCR policy not satisfied (a PCR of " + blob.selection.to_string() +
                    " changed since sealing): " + error.message;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("unseal: TPM2_Unseal", rc));
  SecretBytes out(ByteSpan(data->buffer, data->size));
  OPENSSL_cleanse(data->buffer, data->size);
  return out;
}

}  // namespace warden::tpm
