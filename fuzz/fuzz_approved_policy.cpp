// An approved PCR policy (attest/tpm_policy): untrusted bytes from the issuer, stored by the agent
// and handed to the TPM. Parsing must never crash, and what parses must re-serialize to a record
// that parses to the same fields.
#include <cstdint>
#include <cstdlib>

#include "attest/quote/quote.h"
#include "attest/tpm_policy/authorized_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace tp = warden::attest::tpm_policy;
  auto parsed = tp::ApprovedPolicy::parse(warden::ByteSpan(data, size));
  if (!parsed) return 0;
  auto again = tp::ApprovedPolicy::parse(parsed->serialize());
  if (!again || !(again->selection == parsed->selection) ||
      again->pcr_values != parsed->pcr_values || again->counter != parsed->counter ||
      again->policy_ref != parsed->policy_ref ||
      again->approved_policy != parsed->approved_policy || again->signature != parsed->signature) {
    std::abort();
  }
  if (!warden::attest::quote::parse_signature(parsed->signature)) std::abort();
  (void)tp::policy_ref_epoch(parsed->policy_ref);
  return 0;
}
