#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <openssl/evp.h>

#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

namespace warden::token {
class Signer;
}

/// Policies a sealing authority (warden-issuer) approves for TPM2_PolicyAuthorize (TPM 2.0
/// Part 3, 23.16): the digest arithmetic of PolicyPCR and PolicyAuthorize, the authority's public
/// area, and the signed "approved policy" record the agent presents to unseal. All digests are
/// SHA-256 (the sealed object's nameAlg and the policy session's hash). See docs/sealing.md.
namespace warden::attest::tpm_policy {

inline constexpr std::uint32_t kCcPolicyPcr = 0x0000017F;
inline constexpr std::uint32_t kCcPolicyAuthorize = 0x0000016A;
/// policyRef is a TPM2B_NONCE: at most the largest digest (64 bytes).
inline constexpr std::size_t kMaxPolicyRef = 64;
/// Upper bound of a serialized ApprovedPolicy (two full banks of SHA-512 PCRs fit).
inline constexpr std::size_t kMaxApprovedPolicySize = 4096;

/// TPML_PCR_SELECTION as the TPM marshals it (sizeofSelect 3, banks in order).
Bytes marshal_pcr_selection(const PcrSelection& selection);

/// The values of the selected PCRs in selection order (bank, then ascending index); fails when a
/// selected bank is missing from `values`.
Result<std::vector<Bytes>> selected_values(const PcrSelection& selection, const PcrValues& values);

/// TPM2_PolicyPCR from a fresh session: H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION ||
/// H(values concatenated)). `values` in selection order, each its bank's digest size.
Result<Bytes> policy_pcr_digest(const PcrSelection& selection, const std::vector<Bytes>& values);

/// TPM2_PolicyAuthorize: H(H(0^32 || TPM_CC_PolicyAuthorize || keyName) || policyRef), what a
/// sealed object's authPolicy is. `key_name` = nameAlg || H(TPMT_PUBLIC) of the authority.
Result<Bytes> policy_authorize_digest(ByteSpan key_name, ByteSpan policy_ref);

/// aHash, the digest the authority signs: H(approvedPolicy || policyRef).
Bytes approval_digest(ByteSpan approved_policy, ByteSpan policy_ref);

/// The policyRef of sealing epoch `epoch`: "warden-seal" || u64 big-endian epoch. A sealed blob is
/// bound to one epoch; approvals are signed for one epoch (docs/sealing.md, "Withdrawing").
Bytes epoch_policy_ref(std::uint64_t epoch);
/// The epoch of an epoch_policy_ref(), or nullopt for any other policyRef.
std::optional<std::uint64_t> policy_ref_epoch(ByteSpan policy_ref);

/// The TPM2B_PUBLIC of an ECC P-256 public key as a sealing authority: nameAlg SHA-256,
/// sign|userWithAuth, scheme ECDSA/SHA-256, kdf NULL. kInvalidArgument for any other key.
Result<Bytes> authority_public_area(EVP_PKEY* key);
/// The Name (000b || SHA-256(TPMT_PUBLIC)) of a TPM2B_PUBLIC (untrusted bytes).
Result<Bytes> authority_name(ByteSpan authority_public);

/// A policy approved by the authority: PolicyPCR over `selection` with `pcr_values`, signed with
/// `policy_ref`. Serialized as "WAPOL" u8 version(1), u16+TPML_PCR_SELECTION, u16 count then
/// u16+value per selected PCR, u16+policyRef, u16+approvedPolicy, u16+TPMT_SIGNATURE.
struct ApprovedPolicy {
  PcrSelection selection;
  std::vector<Bytes> pcr_values;  ///< selection order
  Bytes policy_ref;
  Bytes approved_policy;  ///< policy_pcr_digest(selection, pcr_values)
  Bytes signature;        ///< marshalled TPMT_SIGNATURE (ECDSA, SHA-256) over approval_digest()

  [[nodiscard]] Bytes serialize() const;
  /// Parses untrusted bytes under kMaxApprovedPolicySize: every size and count checked, the
  /// signature must be ECDSA/SHA-256 with r and s of 1..32 bytes, and approved_policy must be the
  /// PolicyPCR digest of the listed values (kMalformed otherwise). The signature is not verified.
  static Result<ApprovedPolicy> parse(ByteSpan data);
};

/// Marshalled TPMT_SIGNATURE {TPM_ALG_ECDSA, TPM_ALG_SHA256, r, s} of a raw r||s signature.
Result<Bytes> ecdsa_tpmt_signature(ByteSpan raw_r_s);

/// Issuer side: approves PolicyPCR(selection, values) under `policy_ref`, signed by `authority`
/// (an ES256 signer; its key is the one authority_public_area() describes).
Result<ApprovedPolicy> approve(const PcrSelection& selection, const PcrValues& values,
                               ByteSpan policy_ref, token::Signer& authority);

/// Checks the approval's signature in software against `authority_public` (TPM2B_PUBLIC), as the
/// TPM's TPM2_VerifySignature will: kBadSignature when it does not verify.
Status verify_approval(const ApprovedPolicy& approval, ByteSpan authority_public);

}  // namespace warden::attest::tpm_policy
