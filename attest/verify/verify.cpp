// The verifier pipeline: replay every log, check the quote against the replay, keep what it covers.
#include "attest/verify/verify.h"

#include <algorithm>

#include "attest/verify/stages.h"

namespace warden::attest::verify {
namespace detail {

bool selected(const PcrSelection& s, TpmAlg bank, unsigned index) {
  return std::any_of(s.banks.begin(), s.banks.end(), [&](const PcrBank& b) {
    return b.alg == bank && index < kPcrCount && b.pcrs.test(index);
  });
}

void take_pcr(PcrValues& to, const PcrValues& from, const PcrSelection& s, unsigned index) {
  for (const PcrBank& b : s.banks) {
    const Bytes* v = from.get(b.alg, index);
    if (v != nullptr && to.has_bank(b.alg)) (void)to.set(b.alg, index, *v);
  }
}

namespace {

namespace q = attest::quote;

bool quoted_in_any_bank(const PcrSelection& s, unsigned index) {
  return std::any_of(s.banks.begin(), s.banks.end(),
                     [&](const PcrBank& b) { return index < kPcrCount && b.pcrs.test(index); });
}

void replay_boot_log(const protocol::AttestRequest& req, const PcrSelection& selection,
                     VerifiedEvidence& out, Findings& f) {
  if (!req.boot_log.empty()) {
    auto log = eventlog::parse(req.boot_log);
    auto replayed = log ? eventlog::replay(*log) : Result<eventlog::Replay>(fail(log.error()));
    if (!replayed) {
      f.refuse(ErrorCode::kMalformed, "boot log", replayed.error().message);
    } else {
      out.pcrs = std::move(replayed->pcrs);
      for (const auto& m : eventlog::check_digests(*log))
        f.refuse(ErrorCode::kReplayMismatch, "boot event " + std::to_string(m.index), m.reason);
      out.boot_log = std::move(*log);
      return;
    }
  }
  // No usable log: PCRs the firmware did not touch are zero.
  for (const PcrBank& b : selection.banks) {
    if (!out.pcrs.has_bank(b.alg)) out.pcrs.init_bank(b.alg);
  }
}

void replay_cel(const protocol::AttestRequest& req, const PcrSelection& selection,
                VerifiedEvidence& out, Findings& f) {
  if (!req.cel) return;
  auto records = cel::decode(*req.cel);
  if (!records) {
    f.refuse(ErrorCode::kMalformed, "cel", records.error().message);
    return;
  }
  // The agent's container PCR is configurable: the records name it, and must all agree.
  const unsigned pcr = records->empty() ? cel::kDefaultContainerPcr : records->front().pcr;
  // Records of an unquoted PCR are unverified; dropping them would let an image allowlist pass.
  if (!records->empty() && !quoted_in_any_bank(selection, pcr)) {
    f.refuse(ErrorCode::kPcrSelectionMismatch, "PCR " + std::to_string(pcr), "not quoted",
             "quoted with a container event log");
    return;
  }
  PcrValues start;
  for (const PcrBank& b : selection.banks) start.init_bank(b.alg);
  auto replayed = cel::replay(*records, std::move(start), {.pcr = pcr});
  if (!replayed) {
    f.refuse(ErrorCode::kMalformed, "cel", replayed.error().message);
    return;
  }
  for (const auto& p : replayed->problems) f.refuse(ErrorCode::kReplayMismatch, "cel", p);
  take_pcr(out.pcrs, replayed->pcrs, selection, pcr);
  out.containers = std::move(*records);
}

// Verifies the quote against the replay; sets signed_by_ak and quote_verified.
void check_quote(const protocol::AttestRequest& req, const q::PublicArea& ak,
                 const PcrSelection& selection, const std::optional<q::Attest>& header,
                 VerifiedEvidence& out, Findings& f) {
  // clockInfo.safe only says the TPM clock may have gone back (after a disorderly shutdown);
  // freshness comes from the nonce, not the clock, so it is a note, not a refusal.
  auto quote = q::verify_quote(
      ak, req.quote.attest, req.quote.signature,
      {.nonce = req.nonce, .selection = selection, .pcrs = &out.pcrs, .require_safe = false});
  out.quote_verified = static_cast<bool>(quote);
  out.signed_by_ak = out.quote_verified;
  if (quote) {
    if (!quote->attest.clock_info.safe) f.note("clock_not_safe", "clockInfo.safe", "1", "0");
    return;
  }
  const ErrorCode c = quote.error().code;
  out.signed_by_ak = c == ErrorCode::kPcrSelectionMismatch || c == ErrorCode::kPcrDigestMismatch;
  if (c == ErrorCode::kPcrDigestMismatch && header) {
    auto hash = hash_from_tpm_id(ak.scheme_hash);
    auto detail =
        eventlog::check_replay_against_quote(out.pcrs, header->pcr_selection, header->pcr_digest,
                                             to_ossl(hash.value_or(TpmAlg::kSha256)));
    f.refuse(ErrorCode::kReplayMismatch, "quote",
             detail ? quote.error().message : detail.error().message);
  } else {
    f.refuse(c, "quote", quote.error().message);
  }
}

// Keeps only what the verified quote covers: nothing at all when it did not verify, else the
// boot events of quoted PCRs with the digests of quoted banks (the IMA and CEL stages already cut
// theirs to the quoted state).
void keep_verified(const PcrSelection& selection, VerifiedEvidence& out) {
  if (!out.quote_verified) {
    out.pcrs = PcrValues{};
    out.boot_log.reset();
    out.ima_entries.clear();
    out.ima_ascii.clear();
    out.ima_state.reset();
    out.containers.clear();
    return;
  }
  out.quoted = selection;
  if (!out.boot_log) return;
  auto& events = out.boot_log->events;
  std::erase_if(events,
                [&](const eventlog::Event& e) { return !quoted_in_any_bank(selection, e.pcr); });
  for (eventlog::Event& e : events) {
    std::erase_if(e.digests, [&](const eventlog::EventDigest& d) {
      auto bank = hash_from_tpm_id(d.alg);
      return !bank || !selected(selection, *bank, e.pcr);
    });
  }
}

void check_expectations(const PcrSelection& selection, const Expectations& expected, Findings& f) {
  for (const RequiredPcr& p : expected.pcrs) {
    const bool quoted =
        p.bank ? selected(selection, *p.bank, p.index) : quoted_in_any_bank(selection, p.index);
    if (quoted) continue;
    const std::string subject = p.bank ? std::string(hash_name(*p.bank)) + ":" : std::string();
    f.refuse(ErrorCode::kPcrSelectionMismatch, "PCR " + subject + std::to_string(p.index),
             "not quoted", "quoted (" + p.why + ")");
  }
}

}  // namespace
}  // namespace detail

Result<VerifiedEvidence> verify(const protocol::AttestRequest& req, const DeviceRecord& device,
                                const Expectations& expected) {
  namespace q = attest::quote;
  if (device.ak == nullptr) return fail(ErrorCode::kInternal, "verify: no AK");
  auto selection = PcrSelection::parse(req.pcr_selection);
  if (!selection) return fail(std::move(selection).error().context("attest: pcr_selection"));
  VerifiedEvidence out;
  Findings f;

  // The quote header, unverified until verify_quote: resetCount decides the IMA state.
  auto header_parsed = q::parse_attest(req.quote.attest);
  std::optional<q::Attest> header;
  if (header_parsed) header = std::move(*header_parsed);
  out.rebooted =
      header && device.reset_count && header->clock_info.reset_count > *device.reset_count;
  if (header) out.clock = header->clock_info;

  detail::replay_boot_log(req, *selection, out, f);
  WARDEN_TRY_STATUS(detail::replay_ima(req, device, *selection, out, f));
  detail::replay_cel(req, *selection, out, f);
  detail::check_quote(req, *device.ak, *selection, header, out, f);

  detail::check_expectations(*selection, expected, f);
  // boot_aggregate is checked against PCRs 0-9 only once the quote vouched for them.
  if (out.quote_verified && out.ima_state && req.ima->offset == 0 && !out.ima_entries.empty() &&
      out.ima_entries.front().path == "boot_aggregate") {
    auto agg = ima::check_boot_aggregate(out.ima_entries.front(), out.pcrs);
    if (!agg) f.refuse(agg.error().code, "ima boot_aggregate", agg.error().message);
  }
  detail::keep_verified(*selection, out);

  Findings key;
  out.bound_key = detail::bound_key(req, *device.ak, key);
  out.refusals = std::move(f.refusals);
  out.notes = std::move(f.notes);
  out.key_refusals = std::move(key.refusals);
  return out;
}

Expectations expectations(const policy::Policy& policy) {
  Expectations out;
  for (const auto& rule : policy.pcrs)
    out.pcrs.push_back({rule.bank, rule.index, "the policy names it"});
  if (policy.secure_boot != policy::SecureBoot::kAny) {
    out.pcrs.push_back({std::nullopt, 7, "the policy's secure_boot rule reads its events"});
  }
  if (!policy.allowed_applications.empty() || !policy.denied_applications.empty()) {
    out.pcrs.push_back({std::nullopt, 4, "the policy's application rules read its events"});
  }
  return out;
}

policy::BootEvidence boot_evidence(const eventlog::EventLog& log) {
  policy::BootEvidence out;
  for (const auto& e : log.events) {
    if (e.type == eventlog::kEvNoAction) continue;
    policy::BootEvent b;
    b.pcr = e.pcr;
    b.type = e.type;
    for (const auto& d : e.digests) {
      if (auto alg = hash_from_tpm_id(d.alg)) {
        b.digests.emplace_back(*alg, d.digest);
        // The digest of a boot services application event is its PE image's Authenticode hash.
        if (e.type == eventlog::kEvEfiBootServicesApplication && *alg == TpmAlg::kSha256)
          b.authenticode = d.digest;
      }
    }
    out.events.push_back(std::move(b));
  }
  out.secure_boot = eventlog::secure_boot_enabled(log);
  return out;
}

}  // namespace warden::attest::verify
