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
inline constexpr std::uint32_t kCcPolicyNv = 0x00000149;
inline constexpr std::uint16_t kEoEq = 0x0000;  ///< TPM_EO_EQ
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

/// TPM2_PolicyNV extending `prior`: H(prior || TPM_CC_PolicyNV || H(operandB || u16 offset ||
/// u16 operation) || nvIndexName) (TPM 2.0 Part 3, 23.9).
Result<Bytes> policy_nv_digest(ByteSpan prior, ByteSpan nv_name, ByteSpan operand_b,
                               std::uint16_t offset, std::uint16_t operation);

/// A withdrawal counter in an approval: the TPM NV counter at `index` (Name `nv_name`) must
/// equal `value`. Raising the counter voids every approval for an older value (docs/sealing.md).
struct CounterCheck {
  std::uint32_t index = 0;
  Bytes nv_name;  ///< 000b || SHA-256(TPMS_NV_PUBLIC), as TPM2_NV_ReadPublic returns it
  std::uint64_t value = 0;
  bool operator==(const CounterCheck&) const = default;
};

/// The policy an approval authorises: PolicyPCR(selection, values), then PolicyNV(counter ==
/// value) when `counter` is set.
Result<Bytes> approved_policy_digest(const PcrSelection& selection,
                                     const std::vector<Bytes>& values,
                                     const std::optional<CounterCheck>& counter);

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

/// A policy approved by the authority: PolicyPCR over `selection` with `pcr_values` (then
/// PolicyNV of `counter`), signed with `policy_ref`. Serialized as "WAPOL" u8 version(1),
/// u16+TPML_PCR_SELECTION, u16 count then u16+value per selected PCR, u8 has-counter (0/1) then
/// u32 index, u16+nvName, u64 value, u16+policyRef, u16+approvedPolicy, u16+TPMT_SIGNATURE.
struct ApprovedPolicy {
  PcrSelection selection;
  std::vector<Bytes> pcr_values;  ///< selection order
  std::optional<CounterCheck> counter;
  Bytes policy_ref;
  Bytes approved_policy;  ///< approved_policy_digest(selection, pcr_values, counter)
  Bytes signature;        ///< marshalled TPMT_SIGNATURE (ECDSA, SHA-256) over approval_digest()

  [[nodiscard]] Bytes serialize() const;
  /// Parses untrusted bytes under kMaxApprovedPolicySize: every size and count checked, the
  /// signature must be ECDSA/SHA-256 with r and s of 1..32 bytes, and approved_policy must be
  /// approved_policy_digest() of the fields (kMalformed otherwise). The signature is not verified.
  static Result<ApprovedPolicy> parse(ByteSpan data);
};

/// Marshalled TPMT_SIGNATURE {TPM_ALG_ECDSA, TPM_ALG_SHA256, r, s} of a raw r||s signature.
Result<Bytes> ecdsa_tpmt_signature(ByteSpan raw_r_s);

/// Issuer side: approves PolicyPCR(selection, values) under `policy_ref`, signed by `authority`
/// (an ES256 signer; its key is the one authority_public_area() describes).
Result<ApprovedPolicy> approve(const PcrSelection& selection, const PcrValues& values,
                               ByteSpan policy_ref, token::Signer& authority,
                               const std::optional<CounterCheck>& counter = std::nullopt);

/// Checks the approval's signature in software against `authority_public` (TPM2B_PUBLIC), as the
/// TPM's TPM2_VerifySignature will: kBadSignature when it does not verify.
Status verify_approval(const ApprovedPolicy& approval, ByteSpan authority_public);

}  // namespace warden::attest::tpm_policy
