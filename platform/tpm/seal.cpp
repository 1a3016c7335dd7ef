#include <cstring>

#include <tss2/tss2_mu.h>

#include "platform/tpm/objects.h"
#include "platform/tpm/sealing.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::tpm_error;

namespace {

constexpr std::string_view kSealMagic = "WSEAL";
constexpr std::uint8_t kPolicyPcrVersion = 1;
constexpr std::uint8_t kAuthorizedVersion = 2;
constexpr std::size_t kMaxPolicyRef = 64;  // TPM2B_NONCE

Status run_policy_pcr(ESYS_CONTEXT* ctx, ESYS_TR session, const TPML_PCR_SELECTION& pcrs) {
  TPM2B_DIGEST empty{};
  TSS2_RC rc =
      Esys_PolicyPCR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &pcrs);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyPCR", rc));
  return ok();
}

}  // namespace

Bytes SealedBlob::serialize() const {
  ByteWriter w;
  w.bytes(kSealMagic).u8(version);
  if (authorized()) {
    w.tpm2b(authority_public).tpm2b(policy_ref);
  } else {
    auto tpml = detail::to_tpml(selection);
    Bytes sel;
    if (tpml) {
      sel = detail::marshal("TPML_PCR_SELECTION", *tpml, Tss2_MU_TPML_PCR_SELECTION_Marshal)
                .value_or(Bytes{});
    }
    w.tpm2b(sel);
  }
  w.tpm2b(public_area).tpm2b(private_area);
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
  SealedBlob blob;
  blob.version = *version;
  if (*version == kPolicyPcrVersion) {
    auto sel = r.tpm2b("pcr selection");
    if (!sel) return fail(sel.error());
    auto tpml = detail::unmarshal<TPML_PCR_SELECTION>("TPML_PCR_SELECTION", *sel,
                                                      Tss2_MU_TPML_PCR_SELECTION_Unmarshal);
    if (!tpml) return fail(tpml.error().context("sealed blob"));
    blob.selection = detail::from_tpml(*tpml);
  } else if (*version == kAuthorizedVersion) {
    auto authority = r.tpm2b("authority public", sizeof(TPM2B_PUBLIC));
    if (!authority) return fail(authority.error());
    auto ref = r.tpm2b("policyRef", kMaxPolicyRef);
    if (!ref) return fail(ref.error());
    blob.authority_public.assign(authority->begin(), authority->end());
    blob.policy_ref.assign(ref->begin(), ref->end());
  } else {
    return fail(ErrorCode::kUnsupported,
                "sealed blob: expected version 1 or 2, found " + std::to_string(*version));
  }
  auto pub = r.tpm2b("public");
  if (!pub) return fail(pub.error());
  auto priv = r.tpm2b("private");
  if (!priv) return fail(priv.error());
  WARDEN_TRY_STATUS(r.expect_end());
  blob.public_area.assign(pub->begin(), pub->end());
  blob.private_area.assign(priv->begin(), priv->end());
  return blob;
}

namespace detail {

Result<TPM2B_DIGEST> trial_policy_digest(ESYS_CONTEXT* ctx, const PolicySteps& steps) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR trial = ESYS_TR_NONE;
  TSS2_RC rc =
      Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            ESYS_TR_NONE, nullptr, TPM2_SE_TRIAL, &sym, TPM2_ALG_SHA256, &trial);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_StartAuthSession (trial)", rc));
  Handle session(ctx, trial, Handle::Kind::kFlush);
  WARDEN_TRY_STATUS(steps(ctx, trial));
  TPM2B_DIGEST* digest = nullptr;
  rc = Esys_PolicyGetDigest(ctx, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
  EsysPtr<TPM2B_DIGEST> owned(digest);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyGetDigest", rc));
  return *digest;
}

bool is_fmt1(TSS2_RC rc, TSS2_RC code) {
  return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 &&
         (rc & 0x3F) == (code & 0x3F);
}

Status create_sealed(ESYS_CONTEXT* ctx, const TPM2B_DIGEST& policy, ByteSpan secret,
                     SealedBlob& blob) {
  if (secret.empty() || secret.size() > kMaxSealed) {
    return fail(ErrorCode::kInvalidArgument,
                "seal: expected 1..128 bytes of secret, got " + std::to_string(secret.size()));
  }
  auto srk = create_srk(ctx);
  if (!srk) return fail(srk.error().context("seal"));
  // The SRK's authorisation session is salted to it and encrypts the secret (inSensitive).
  auto session = salted_session(ctx, srk->get(), TPM2_SE_HMAC,
                                TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION);
  if (!session) return fail(session.error().context("seal"));

  TPM2B_SENSITIVE_CREATE sensitive{};
  sensitive.sensitive.data.size = static_cast<std::uint16_t>(secret.size());
  std::memcpy(sensitive.sensitive.data.buffer, secret.data(), secret.size());
  TPM2B_PUBLIC in_public{};
  TPMT_PUBLIC& p = in_public.publicArea;
  p.type = TPM2_ALG_KEYEDHASH;
  p.nameAlg = TPM2_ALG_SHA256;
  // fixedTPM|fixedParent|noDA; userWithAuth CLEAR so only the policy authorises.
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
  p.authPolicy = policy;
  p.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcrs{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = Esys_Create(ctx, srk->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                           &in_public, &outside, &creation_pcrs, &out_private, &out_public, nullptr,
                           nullptr, nullptr);
  OPENSSL_cleanse(&sensitive, sizeof sensitive);
  EsysPtr<TPM2B_PRIVATE> owned_private(out_private);
  EsysPtr<TPM2B_PUBLIC> owned_public(out_public);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal: TPM2_Create", rc));
  auto pub = marshal("TPM2B_PUBLIC", *out_public, Tss2_MU_TPM2B_PUBLIC_Marshal);
  if (!pub) return fail(pub.error());
  auto priv = marshal("TPM2B_PRIVATE", *out_private, Tss2_MU_TPM2B_PRIVATE_Marshal);
  if (!priv) return fail(priv.error());
  blob.public_area = std::move(*pub);
  blob.private_area = std::move(*priv);
  return ok();
}

Result<SecretBytes> unseal_object(ESYS_CONTEXT* ctx, const SealedBlob& blob,
                                  const PolicySteps& satisfy, std::string_view violation) {
  auto srk = create_srk(ctx);
  if (!srk) return fail(srk.error().context("unseal"));
  auto object = load(ctx, srk->get(), ESYS_TR_PASSWORD, blob.public_area, blob.private_area);
  if (!object) return fail(object.error().context("unseal: load sealed object"));
  // Policy session salted to the SRK; ENCRYPT protects the secret in the Unseal response.
  auto session = salted_session(ctx, srk->get(), TPM2_SE_POLICY,
                                TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION);
  if (!session) return fail(session.error().context("unseal"));
  srk->reset();
  WARDEN_TRY_STATUS(satisfy(ctx, session->get()));
  TPM2B_SENSITIVE_DATA* data = nullptr;
  TSS2_RC rc = Esys_Unseal(ctx, object->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &data);
  EsysPtr<TPM2B_SENSITIVE_DATA> owned(data);
  if (is_fmt1(rc, TPM2_RC_POLICY_FAIL)) {
    Error error = tpm_error("unseal: TPM2_Unseal", rc);
    error.code = ErrorCode::kPolicyViolation;
    error.message = std::string(violation) + ": " + error.message;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("unseal: TPM2_Unseal", rc));
  SecretBytes out(ByteSpan(data->buffer, data->size));
  OPENSSL_cleanse(data->buffer, data->size);
  return out;
}

}  // namespace detail

Result<SealedBlob> Tpm::seal(const PcrSelection& selection, ByteSpan secret) const {
  if (selection.empty()) {
    return fail(ErrorCode::kInvalidArgument, "seal: expected a non-empty PCR selection");
  }
  auto tpml = detail::to_tpml(selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto policy = detail::trial_policy_digest(
      ctx->get(), [&](ESYS_CONTEXT* c, ESYS_TR trial) { return run_policy_pcr(c, trial, *tpml); });
  if (!policy) return fail(policy.error().context("seal"));
  SealedBlob blob;
  blob.selection = selection;
  WARDEN_TRY_STATUS(detail::create_sealed(ctx->get(), *policy, secret, blob));
  return blob;
}

Result<SecretBytes> Tpm::unseal(const SealedBlob& blob) const {
  if (blob.authorized()) {
    return fail(ErrorCode::kInvalidArgument,
                "unseal: a version-2 (PolicyAuthorize) blob needs an approved policy");
  }
  auto tpml = detail::to_tpml(blob.selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  return detail::unseal_object(
      ctx->get(), blob,
      [&](ESYS_CONTEXT* c, ESYS_TR session) { return run_policy_pcr(c, session, *tpml); },
      "unseal: PCR policy not satisfied (a PCR of " + blob.selection.to_string() +
          " changed since sealing)");
}

}  // namespace warden::tpm
