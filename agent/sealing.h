#pragma once
// Sealed secrets bound to the issuer's sealing authority (docs/sealing.md): the PCRs they name,
// and the issuer's approvals as the agent stores and presents them.

#include "agent/config/agent_config.h"
#include "attest/tpm_policy/authorized_policy.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

/// Boot PCRs of the sha256 bank of tpm.pcrs: never PCR 10 (IMA) or the container PCR, which
/// move with every measurement.
PcrSelection seal_selection(const AgentConfig& config);

/// An issuer's approval (untrusted bytes) checked before it is stored: it parses, is signed by
/// `authority` and approves `selection` (what the agent's blobs are unsealed with).
Result<attest::tpm_policy::ApprovedPolicy> check_approval(ByteSpan approval, ByteSpan authority,
                                                          const PcrSelection& selection);

/// The TPM's view of a stored approval.
tpm::PolicyApproval to_tpm(const attest::tpm_policy::ApprovedPolicy& approval);

}  // namespace warden::agent
