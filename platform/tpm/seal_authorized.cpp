// Sealing to policies a sealing authority approves: TPM2_PolicyAuthorize (TPM 2.0 Part 3, 23.16)
// with the approval's signature checked by TPM2_VerifySignature (Part 3, 20.1).
#include <cstring>

#include <tss2/tss2_mu.h>

#include "platform/base/openssl.h"
#include "platform/tpm/objects.h"
#include "platform/tpm/sealing.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::Handle;
using detail::tpm_error;

namespace {

constexpr std::size_t kMaxPolicyRef = 64;  // TPM2B_NONCE
constexpr std::size_t kDigestSize = 32;

/// The authority key loaded from its public area. Owner hierarchy: a key in the NULL hierarchy
/// yields a NULL ticket from TPM2_VerifySignature, which PolicyAuthorize refuses.
struct Authority {
  Handle handle;
  TPM2B_NAME name{};
};

Result<Authority> load_authority(ESYS_CONTEXT* ctx, ByteSpan authority_public) {
  auto pub = detail::unmarshal<TPM2B_PUBLIC>("sealing authority TPM2B_PUBLIC", authority_public,
                                             Tss2_MU_TPM2B_PUBLIC_Unmarshal);
  if (!pub) return fail(pub.error());
  const TPMT_PUBLIC& p = pub->publicArea;
  if (p.type != TPM2_ALG_ECC || p.nameAlg != TPM2_ALG_SHA256 ||
      p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
      (p.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "sealing authority: expected an ECC P-256 signing key with nameAlg SHA-256");
  }
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_LoadExternal(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr, &*pub,
                                 ESYS_TR_RH_OWNER, &handle);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("sealing authority: TPM2_LoadExternal", rc));
  Authority out{Handle(ctx, handle, Handle::Kind::kFlush), {}};
  TPM2B_NAME* name = nullptr;
  rc = Esys_TR_GetName(ctx, handle, &name);
  EsysPtr<TPM2B_NAME> owned(name);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("sealing authority: name", rc));
  out.name = *name;
  return out;
}

TPM2B_NONCE to_nonce(ByteSpan ref) {
  TPM2B_NONCE out{};
  out.size = static_cast<std::uint16_t>(ref.size());
  std::memcpy(out.buffer, ref.data(), ref.size());
  return out;
}

Status check_policy_ref(ByteSpan ref, std::string_view operation) {
  if (ref.size() > kMaxPolicyRef) {
    return fail(ErrorCode::kInvalidArgument, std::string(operation) +
                                                 ": expected a policyRef of at most 64 bytes, "
                                                 "got " +
                                                 std::to_string(ref.size()));
  }
  return ok();
}

// PolicyAuthorize(Name, policyRef) computed by the TPM in a trial session, which checks neither
// the approved policy nor the ticket.
Result<TPM2B_DIGEST> authorize_policy_digest(ESYS_CONTEXT* ctx, const TPM2B_NAME& name,
                                             ByteSpan policy_ref) {
  return detail::trial_policy_digest(ctx, [&](ESYS_CONTEXT* c, ESYS_TR trial) -> Status {
    TPM2B_DIGEST approved{};
    const TPM2B_NONCE ref = to_nonce(policy_ref);
    TPMT_TK_VERIFIED null_ticket{};
    null_ticket.tag = TPM2_ST_VERIFIED;
    null_ticket.hierarchy = TPM2_RH_NULL;
    TSS2_RC rc = Esys_PolicyAuthorize(c, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &approved,
                                      &ref, &name, &null_ticket);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyAuthorize (trial)", rc));
    return ok();
  });
}

// The policy steps of an approval on `session`: the ticket proves the authority signed
// aHash = H(approvedPolicy || policyRef); PolicyAuthorize then replaces the PolicyPCR digest
// with PolicyAuthorize(Name, policyRef) when the two agree.
Status satisfy_approval(ESYS_CONTEXT* ctx, ESYS_TR session, const Authority& authority,
                        const TPML_PCR_SELECTION& pcrs, const PolicyApproval& approval) {
  ByteWriter message;
  message.bytes(approval.approved_policy).bytes(approval.policy_ref);
  const Bytes a_hash = ossl::sha256(message.data());
  TPM2B_DIGEST digest{};
  digest.size = static_cast<std::uint16_t>(a_hash.size());
  std::memcpy(digest.buffer, a_hash.data(), a_hash.size());
  auto signature = detail::unmarshal<TPMT_SIGNATURE>("approval TPMT_SIGNATURE", approval.signature,
                                                     Tss2_MU_TPMT_SIGNATURE_Unmarshal);
  if (!signature) return fail(signature.error().context("unseal"));
  TPMT_TK_VERIFIED* ticket = nullptr;
  TSS2_RC rc = Esys_VerifySignature(ctx, authority.handle.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &digest, &*signature, &ticket);
  EsysPtr<TPMT_TK_VERIFIED> owned_ticket(ticket);
  if (detail::is_fmt1(rc, TPM2_RC_SIGNATURE) || detail::is_fmt1(rc, TPM2_RC_SCHEME)) {
    Error error = tpm_error("unseal: TPM2_VerifySignature", rc);
    error.code = ErrorCode::kBadSignature;
    error.message =
        "unseal: the approval's signature does not verify with the blob's sealing authority key "
        "(signed by another key, or altered): " +
        error.message;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("unseal: TPM2_VerifySignature", rc));

  TPM2B_DIGEST empty{};
  rc = Esys_PolicyPCR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &pcrs);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("unseal: TPM2_PolicyPCR", rc));
  if (approval.counter) {
    WARDEN_TRY_STATUS(detail::policy_counter(ctx, session, *approval.counter));
  }
  TPM2B_DIGEST approved{};
  approved.size = static_cast<std::uint16_t>(approval.approved_policy.size());
  std::memcpy(approved.buffer, approval.approved_policy.data(), approval.approved_policy.size());
  const TPM2B_NONCE ref = to_nonce(approval.policy_ref);
  rc = Esys_PolicyAuthorize(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &approved, &ref,
                            &authority.name, ticket);
  if (rc == (TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_1)) {
    Error error = tpm_error("unseal: TPM2_PolicyAuthorize", rc);
    error.code = ErrorCode::kPolicyViolation;
    error.message = "unseal: the current values of " + approval.selection.to_string() +
                    " are not the approved ones: " + error.message;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) {
    Error error = tpm_error("unseal: TPM2_PolicyAuthorize", rc);
    if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) error.code = ErrorCode::kPolicyViolation;
    return fail(std::move(error));
  }
  return ok();
}

}  // namespace

Result<SealedBlob> Tpm::seal_authorized(ByteSpan authority_public, ByteSpan policy_ref,
                                        ByteSpan secret) const {
  WARDEN_TRY_STATUS(check_policy_ref(policy_ref, "seal"));
  if (secret.empty() || secret.size() > detail::kMaxSealed) {
    return fail(ErrorCode::kInvalidArgument,
                "seal: expected 1..128 bytes of secret, got " + std::to_string(secret.size()));
  }
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  TPM2B_DIGEST policy{};
  {
    auto authority = load_authority(ctx->get(), authority_public);
    if (!authority) return fail(authority.error().context("seal"));
    auto digest = authorize_policy_digest(ctx->get(), authority->name, policy_ref);
    if (!digest) return fail(digest.error().context("seal"));
    policy = *digest;
  }  // the authority key is flushed before the SRK needs its slot
  SealedBlob blob;
  blob.version = 2;
  blob.authority_public.assign(authority_public.begin(), authority_public.end());
  blob.policy_ref.assign(policy_ref.begin(), policy_ref.end());
  WARDEN_TRY_STATUS(detail::create_sealed(ctx->get(), policy, secret, blob));
  return blob;
}

Result<SecretBytes> Tpm::unseal_authorized(const SealedBlob& blob,
                                           const PolicyApproval& approval) const {
  if (!blob.authorized()) {
    return fail(ErrorCode::kInvalidArgument,
                "unseal: a version-1 (PolicyPCR) blob takes no approved policy");
  }
  WARDEN_TRY_STATUS(check_policy_ref(approval.policy_ref, "unseal"));
  if (approval.approved_policy.size() != kDigestSize || approval.selection.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "unseal: expected an approval with a 32-byte policy digest and a PCR selection");
  }
  if (approval.policy_ref != blob.policy_ref) {
    // The TPM would refuse at Unseal; say why first. An older epoch is a withdrawn approval.
    return fail(ErrorCode::kPolicyViolation,
                "unseal: the approval is for another policyRef (epoch) than the blob was sealed "
                "to");
  }
  auto tpml = detail::to_tpml(approval.selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  return detail::unseal_object(
      ctx->get(), blob,
      [&](ESYS_CONTEXT* c, ESYS_TR session) -> Status {
        auto authority = load_authority(c, blob.authority_public);
        if (!authority) return fail(authority.error().context("unseal"));
        return satisfy_approval(c, session, *authority, *tpml, approval);
      },
      "unseal: PolicyAuthorize policy not satisfied (the approval is not for this blob's "
      "authority and policyRef)");
}

Result<SealedBlob> Tpm::reseal(const SealedBlob& v1, ByteSpan authority_public,
                               ByteSpan policy_ref) const {
  if (v1.authorized()) {
    return fail(ErrorCode::kInvalidArgument, "reseal: the blob is already version 2");
  }
  // One lease across both steps: no other operation of this Tpm runs in between.
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto secret = unseal(v1);
  if (!secret) return fail(secret.error().context("reseal"));
  auto sealed = seal_authorized(authority_public, policy_ref, secret->view());
  if (!sealed) return fail(sealed.error().context("reseal"));
  return sealed;
}

Result<SealedBlob> Tpm::reseal(const SealedBlob& v2, const PolicyApproval& approval,
                               ByteSpan authority_public, ByteSpan policy_ref) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto secret = unseal_authorized(v2, approval);
  if (!secret) return fail(secret.error().context("reseal"));
  auto sealed = seal_authorized(authority_public, policy_ref, secret->view());
  if (!sealed) return fail(sealed.error().context("reseal"));
  return sealed;
}

}  // namespace warden::tpm
