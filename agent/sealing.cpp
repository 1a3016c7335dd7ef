#include "agent/sealing.h"

namespace warden::agent {
namespace tp = attest::tpm_policy;
namespace {
constexpr unsigned kImaPcr = 10;
}  // namespace

PcrSelection seal_selection(const AgentConfig& config) {
  PcrSelection out;
  for (const PcrBank& b : config.pcrs.banks) {
    if (b.alg != TpmAlg::kSha256) continue;
    PcrBank bank = b;
    bank.pcrs.reset(kImaPcr);
    bank.pcrs.reset(config.container_pcr);
    if (bank.pcrs.any()) out.banks.push_back(bank);
  }
  return out;
}

Result<tp::ApprovedPolicy> check_approval(ByteSpan approval, ByteSpan authority,
                                          const PcrSelection& selection) {
  auto parsed = tp::ApprovedPolicy::parse(approval);
  if (!parsed) return fail(std::move(parsed).error().context("approved policy"));
  if (parsed->selection != selection) {
    return fail(ErrorCode::kPolicyViolation, "approved policy: approves " +
                                                 parsed->selection.to_string() + ", expected " +
                                                 selection.to_string());
  }
  if (auto verified = tp::verify_approval(*parsed, authority); !verified)
    return fail(std::move(verified).error());
  return std::move(*parsed);
}

tpm::PolicyApproval to_tpm(const tp::ApprovedPolicy& approval) {
  tpm::PolicyApproval out{approval.selection, approval.approved_policy, approval.policy_ref,
                          approval.signature, std::nullopt};
  if (approval.counter) out.counter = {approval.counter->index, approval.counter->value};
  return out;
}

}  // namespace warden::agent
