#pragma once

// Internal to platform/tpm: the sealed-object steps shared by PolicyPCR (seal.cpp) and
// PolicyAuthorize (seal_authorized.cpp) sealing.

#include <functional>
#include <string_view>

#include "platform/tpm/esys.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm::detail {

inline constexpr std::size_t kMaxSealed = 128;

/// Policy commands run on a session (a trial session or the one that authorises an Unseal).
using PolicySteps = std::function<Status(ESYS_CONTEXT* ctx, ESYS_TR session)>;

/// Whether `rc` is the TPM's format-one response `code` (TPM2_RC_*), any session or parameter.
bool is_fmt1(TSS2_RC rc, TSS2_RC code);

/// TPM2_Create of a KEYEDHASH object holding `secret` (1..128 bytes), authPolicy = `policy`,
/// userWithAuth clear, under a fresh SRK with an HMAC session salted to it that encrypts the
/// secret. Fills `blob`'s public and private areas.
Status create_sealed(ESYS_CONTEXT* ctx, const TPM2B_DIGEST& policy, ByteSpan secret,
                     SealedBlob& blob);

/// The policyDigest of a trial session (SHA-256) after `steps` ran on it.
Result<TPM2B_DIGEST> trial_policy_digest(ESYS_CONTEXT* ctx, const PolicySteps& steps);

/// Loads `blob` under a fresh SRK, starts a policy session salted to it with response
/// encryption, runs `satisfy` on that session and unseals. A TPM_RC_POLICY_FAIL of TPM2_Unseal
/// becomes kPolicyViolation with `violation` in front of the TPM's text.
Result<SecretBytes> unseal_object(ESYS_CONTEXT* ctx, const SealedBlob& blob,
                                  const PolicySteps& satisfy, std::string_view violation);

/// TPM2_PolicyNV(counter.index == counter.value) on `session`; kPolicyViolation when the counter
/// moved (the approval was withdrawn).
Status policy_counter(ESYS_CONTEXT* ctx, ESYS_TR session, const PolicyApproval::Counter& counter);

}  // namespace warden::tpm::detail
