// attest(): verify the quote and the logs it covers, appraise, and mint the device result token.
#include <algorithm>

#include "attest/protocol/limits.h"
#include "attest/quote/quote.h"
#include "attest/token/cwt.h"
#include "attest/verify/verify.h"
#include "issuer/service_impl.h"
#include "platform/base/encoding.h"

namespace warden::issuer {

namespace q = attest::quote;
namespace verify = attest::verify;
using audit::Action;
using audit::Decision;
using protocol::Reason;

namespace {

// Counters only move forward; a higher resetCount is a reboot. Kept apart from the other
// findings: a replay found when the outcome is recorded voids them (only fresh evidence may
// judge the counters).
struct Counters : verify::Findings {
  bool went_back = false;
};

Counters check_counters(const Device& device, const verify::VerifiedEvidence& ev, bool authentic) {
  Counters c;
  if (!authentic || !device.reset_count) return c;
  const auto& ci = *ev.clock;
  if (ci.reset_count < *device.reset_count) {
    c.went_back = true;
    c.refuse(ErrorCode::kPolicyViolation, "resetCount", std::to_string(ci.reset_count),
             ">= " + std::to_string(*device.reset_count));
  } else if (ev.rebooted) {
    c.note("reboot", "resetCount", std::to_string(*device.reset_count),
           std::to_string(ci.reset_count));
  } else if (device.restart_count && ci.restart_count < *device.restart_count) {
    c.went_back = true;
    c.refuse(ErrorCode::kPolicyViolation, "restartCount", std::to_string(ci.restart_count),
             ">= " + std::to_string(*device.restart_count));
  }
  return c;
}

}  // namespace

Result<protocol::AttestResponse> Service::attest(const protocol::AttestRequest& req,
                                                 ByteSpan received) {
  const std::int64_t t = now();
  WARDEN_ASSIGN(device, options_.store->get_device(req.device_id));
  if (device.state != DeviceState::kEnabled)
    return fail(ErrorCode::kRevoked, "attest: device " + device.id + " is revoked");
  WARDEN_ASSIGN(policy, active_policy());
  WARDEN_ASSIGN(ak, q::parse_public2b(device.ak_public));
  // The bytes as received: re-encoding a 160 KB request only to hash it cost ~8% of an
  // attestation, and the received bytes are what an archived copy of the evidence would match.
  const std::string evidence_hash = hex_encode(ossl::sha256(received));
  verify::Findings f;

  // Freshness. The nonce is consumed below, once the quote proves the AK signed it.
  auto fresh = nonces_.check(req.nonce, device.id);
  if (!fresh) {
    f.refuse(
        fresh.error().code == ErrorCode::kExpired ? ErrorCode::kExpired : ErrorCode::kNonceMismatch,
        "nonce", fresh.error().message);
  }

  // The pipeline returns only what the quote vouched for.
  WARDEN_ASSIGN(ev, verify::verify(req,
                                   {.ak = &ak,
                                    .reset_count = device.reset_count,
                                    .ima_entries = device.ima_entries,
                                    .ima_state = device.ima_state},
                                   verify::expectations(policy->reference)));
  f.refusals.insert(f.refusals.end(), std::make_move_iterator(ev.refusals.begin()),
                    std::make_move_iterator(ev.refusals.end()));
  f.notes = std::move(ev.notes);
  const bool rebooted = ev.rebooted;
  // Only authentic, fresh evidence may consume the nonce and change the device's record.
  // The nonce is consumed in the transaction that records the outcome (below).
  const bool authentic = ev.signed_by_ak && fresh;

  if (ev.quote_verified) {
    std::optional<attest::policy::BootEvidence> boot;
    if (ev.boot_log) boot = verify::boot_evidence(*ev.boot_log);
    auto verdict = attest::policy::appraise(
        policy->reference, {&ev.pcrs, boot ? &*boot : nullptr, ev.ima_entries, ev.containers});
    for (auto& r : verdict.reasons) {
      f.refusals.push_back(
          {std::move(r.code), std::move(r.subject), std::move(r.expected), std::move(r.found)});
    }
  }
  f.refusals.insert(f.refusals.end(), std::make_move_iterator(ev.key_refusals.begin()),
                    std::make_move_iterator(ev.key_refusals.end()));
  std::optional<token::Jwk>& cnf_key = ev.bound_key;

  const Counters counters = check_counters(device, ev, authentic);
  const bool counters_went_back = counters.went_back;

  // ---- Decision ----
  auto reasons_of = [&](bool with_counters) {
    std::vector<Reason> out = f.refusals;
    if (with_counters) out.insert(out.end(), counters.refusals.begin(), counters.refusals.end());
    out.insert(out.end(), f.notes.begin(), f.notes.end());
    if (with_counters) out.insert(out.end(), counters.notes.begin(), counters.notes.end());
    return out;
  };
  bool pass = f.refusals.empty() && counters.refusals.empty();
  std::vector<Reason> all = reasons_of(true);
  audit::Event event{t,
                     device.id,
                     Action::kAttest,
                     pass ? Decision::kAccept : Decision::kReject,
                     evidence_hash,
                     policy->reference.version,
                     all};
  bool recorded = false;
  if (authentic) {
    AuditRecord record = audit::to_record(event);
    AttestationUpdate u;
    u.reset_count = counters_went_back ? device.reset_count
                                       : std::optional<std::uint64_t>(ev.clock->reset_count);
    u.restart_count = counters_went_back ? device.restart_count
                                         : std::optional<std::uint64_t>(ev.clock->restart_count);
    u.attested_at = t;
    u.verdict = record.decision;
    u.reasons_json = record.reasons_json;
    if (pass) {
      u.binding_key_public = req.binding_key.public_area;
      if (ev.ima_state) {
        u.ima_entries = ev.ima_state->entries;
        u.ima_state = verify::encode_ima_state(ev.ima_state->pcrs);
      } else if (rebooted) {
        u.ima_entries = 0;
        u.ima_state = Bytes{};
      }
    }
    // A verdict that flips is a compliance change (issue 20): a failure after an accepted
    // appraisal also revokes the device's live tokens, in the same transaction.
    const bool falls = !pass && device.last_verdict == "accept";
    const bool recovers = pass && device.last_verdict == "reject";
    Status outcome = ok();
    if (falls || recovers) {
      std::string why = falls ? "attestation refused" : "attestation accepted again";
      const auto& refusals = f.refusals.empty() ? counters.refusals : f.refusals;
      if (falls && !refusals.empty())
        why += ": " + refusals.front().code + " " + refusals.front().subject;
      DeviceChange change;
      change.device_id = device.id;
      change.now = t;
      change.revoke_live_tokens = falls;
      auto changed = record_attestation_change(
          device.id, req.nonce, NonceIssuer::expiry(req.nonce), u, record, std::move(change),
          [&](const std::vector<TokenRecord>& flipped) {
            auto events =
                ssf::revocation_events(device.id, flipped, falls, t, ssf::Initiator::kPolicy, why);
            events.push_back(
                ssf::compliance_change(device.id, recovers, t, ssf::Initiator::kPolicy, why));
            return events;
          });
      if (!changed) outcome = fail(std::move(changed).error());
    } else {
      outcome = options_.store->record_attestation_outcome(
          device.id, req.nonce, NonceIssuer::expiry(req.nonce), u, record);
    }
    forget_device(device.id);
    if (outcome) {
      recorded = true;
    } else {
      if (outcome.error().code != ErrorCode::kReplay) return fail(std::move(outcome).error());
      f.refuse(ErrorCode::kReplay, "nonce", outcome.error().message);
      pass = false;
      all = reasons_of(false);
      event.decision = Decision::kReject;
    }
  }
  if (!recorded) {
    event.details = audit::bound_unvouched(all);
    audit_log_.refusal(event);
  }

  protocol::AttestResponse out;
  out.verdict = pass ? protocol::Verdict::kPass : protocol::Verdict::kFail;
  out.policy_version = policy->reference.version;
  out.ima_next_offset = !pass          ? device.ima_entries
                        : ev.ima_state ? ev.ima_state->entries
                        : rebooted     ? 0
                                       : device.ima_entries;
  if (all.size() > protocol::limits::kReasons) {
    const std::size_t dropped = all.size() - (protocol::limits::kReasons - 1);
    all.resize(protocol::limits::kReasons - 1);
    all.push_back({"limit_exceeded", "reasons", std::nullopt,
                   std::to_string(dropped) + " more (see the audit log)"});
  }
  out.reasons = std::move(all);
  if (!pass) return out;
  WARDEN_ASSIGN(evidence_bytes, hex_decode(evidence_hash));
  WARDEN_ASSIGN(device_token, mint_device_token(device.id, req.nonce, *cnf_key,
                                                policy->reference.version, evidence_bytes));
  out.device_token = std::move(device_token.first);
  out.expires_at = static_cast<std::uint64_t>(device_token.second);
  if (req.seal_pcrs && options_.seal_authority != nullptr) {
    auto approval = approve_seal_pcrs(*req.seal_pcrs, ev.quoted, ev.pcrs);
    if (approval) {
      out.approved_policy = std::move(*approval);
    } else if (out.reasons.size() < protocol::limits::kReasons) {
      // The verdict stands; the agent keeps its previous approval and says why it got none.
      out.reasons.push_back(
          {"no_seal_approval", "seal_pcrs", std::nullopt, approval.error().message});
    }
  }
  return out;
}

// Only quoted values are approved (they are what the TPM signed), sha256 bank only: the sealed
// object's policy session is SHA-256.
Result<Bytes> Service::approve_seal_pcrs(std::string_view text, const PcrSelection& quoted,
                                         const attest::PcrValues& values) {
  WARDEN_ASSIGN(selection, PcrSelection::parse(text));
  if (selection.empty() || selection.banks.size() != 1 ||
      selection.banks[0].alg != TpmAlg::kSha256) {
    return fail(ErrorCode::kInvalidArgument, "seal_pcrs: expected sha256 PCRs only");
  }
  const auto bank = std::find_if(quoted.banks.begin(), quoted.banks.end(),
                                 [](const PcrBank& b) { return b.alg == TpmAlg::kSha256; });
  if (bank == quoted.banks.end() || (selection.banks[0].pcrs & ~bank->pcrs).any()) {
    return fail(ErrorCode::kInvalidArgument,
                "seal_pcrs: " + selection.to_string() + " not within the quoted selection");
  }
  WARDEN_ASSIGN(approval, options_.seal_authority->approve(selection, values));
  return approval.serialize();
}

Result<std::pair<Bytes, std::int64_t>> Service::mint_device_token(const std::string& device_id,
                                                                  ByteSpan nonce,
                                                                  const token::Jwk& cnf_key,
                                                                  const std::string& policy_version,
                                                                  const Bytes& evidence_hash) {
  const std::int64_t t = now();
  token::Claims c;
  c.iss = options_.issuer_url.empty() ? "warden-issuer" : options_.issuer_url;
  c.sub = device_id;
  c.iat = t;
  c.exp = t + options_.config->tokens.device_token_ttl_s;
  c.jti = random_id();
  c.cnf = token::Confirmation{cnf_key.thumbprint(), cnf_key};
  c.device_id = device_id;
  c.attestation = token::AttestationResult{true, policy_version, evidence_hash};
  c.eat_nonce = Bytes(nonce.begin(), nonce.end());
  c.eat_profile = std::string(token::kEatProfile);
  WARDEN_ASSIGN(signer, this->signer());
  WARDEN_ASSIGN(cwt, token::mint_cwt(*signer, c));
  return std::pair{std::move(cwt), *c.exp};
}

}  // namespace warden::issuer
