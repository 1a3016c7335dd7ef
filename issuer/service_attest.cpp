// attest(): verify the quote and the logs it covers, appraise, and mint the device result token.
#include <algorithm>
#include <charconv>

#include "attest/cel/cel.h"
#include "attest/eventlog/eventlog.h"
#include "attest/ima/ima.h"
#include "attest/protocol/limits.h"
#include "attest/quote/quote.h"
#include "attest/token/cwt.h"
#include "attest/token/json.h"
#include "issuer/service_impl.h"
#include "platform/base/encoding.h"

namespace warden::issuer {
namespace {

namespace q = attest::quote;
namespace ima = attest::ima;
using attest::PcrValues;
using protocol::Reason;

constexpr unsigned kImaPcr = 10;

/// What an appraisal found: refusals decide the verdict, notes are reported on a pass too.
struct Findings {
  std::vector<Reason> refusals;
  std::vector<Reason> notes;
  void refuse(ErrorCode c, std::string subject, std::string found,
              std::optional<std::string> expected = std::nullopt) {
    refusals.push_back(
        {std::string(to_string(c)), std::move(subject), std::move(expected), std::move(found)});
  }
  void note(std::string code, std::string subject, std::string expected, std::string found) {
    notes.push_back({std::move(code), std::move(subject), std::move(expected), std::move(found)});
  }
};

/// The PCR values the logs claim, and what the appraisal needs of each log.
struct Claimed {
  PcrValues pcrs;
  std::optional<attest::eventlog::EventLog> boot_log;
  std::vector<ima::Entry> ima_ascii;  ///< an ASCII list's entries (a binary list is not copied)
  /// Only the entries the quote covered: views into the request's binary list or ima_ascii.
  std::vector<ima::EntryView> ima_entries;
  std::optional<ima::ReplayState> ima_state;  ///< after them
  std::vector<attest::cel::Record> containers;
};

bool selected(const PcrSelection& s, TpmAlg bank, unsigned index) {
  return std::any_of(s.banks.begin(), s.banks.end(), [&](const PcrBank& b) {
    return b.alg == bank && index < kPcrCount && b.pcrs.test(index);
  });
}

// Copies PCR `index` of every selected bank from `from` into `to` (banks both have).
void take_pcr(PcrValues& to, const PcrValues& from, const PcrSelection& s, unsigned index) {
  for (const PcrBank& b : s.banks) {
    const Bytes* v = from.get(b.alg, index);
    if (v != nullptr && to.has_bank(b.alg)) (void)to.set(b.alg, index, *v);
  }
}

// IMA replay state as kept in the store: per bank, u16 TPM_ALG_ID then the 24 PCR values.
Bytes encode_ima_state(const PcrValues& pcrs) {
  ByteWriter w;
  for (TpmAlg bank : pcrs.banks()) {
    w.u16be(static_cast<std::uint16_t>(bank));
    for (unsigned i = 0; i < kPcrCount; ++i) w.bytes(*pcrs.get(bank, i));
  }
  return std::move(w).take();
}

Result<PcrValues> decode_ima_state(ByteSpan data) {
  ByteReader r(data, "IMA replay state");
  PcrValues pcrs;
  while (!r.empty()) {
    auto id = r.u16be("bank");
    if (!id) return fail(std::move(id).error());
    auto bank = hash_from_tpm_id(*id);
    if (!bank) return fail(r.error("bank", "unknown algorithm"));
    pcrs.init_bank(*bank);
    for (unsigned i = 0; i < kPcrCount; ++i) {
      auto v = r.bytes(hash_size(*bank), "pcr");
      if (!v) return fail(std::move(v).error());
      WARDEN_TRY_STATUS(pcrs.set(*bank, i, *v));
    }
  }
  return pcrs;
}

// Kernels before 5.8 extend non-SHA-1 banks with the zero-padded SHA-1 template hash.
ima::BankRule bank_rule(const std::optional<std::string>& kernel) {
  if (!kernel) return ima::BankRule::kTemplateDataHash;
  int major = 0, minor = 0;
  const char* p = kernel->data();
  const char* end = p + kernel->size();
  auto r1 = std::from_chars(p, end, major);
  if (r1.ec == std::errc() && r1.ptr < end && *r1.ptr == '.')
    std::from_chars(r1.ptr + 1, end, minor);
  if (major > 0 && (major < 5 || (major == 5 && minor < 8))) return ima::BankRule::kPaddedSha1;
  return ima::BankRule::kTemplateDataHash;
}

attest::policy::BootEvidence boot_evidence(const attest::eventlog::EventLog& log) {
  attest::policy::BootEvidence out;
  for (const auto& e : log.events) {
    if (e.type == attest::eventlog::kEvNoAction) continue;
    attest::policy::BootEvent b;
    b.pcr = e.pcr;
    b.type = e.type;
    for (const auto& d : e.digests) {
      if (auto alg = hash_from_tpm_id(d.alg)) {
        b.digests.emplace_back(*alg, d.digest);
        // The digest of a boot services application event is its PE image's Authenticode hash.
        if (e.type == attest::eventlog::kEvEfiBootServicesApplication && *alg == TpmAlg::kSha256)
          b.authenticode = d.digest;
      }
    }
    out.events.push_back(std::move(b));
  }
  out.secure_boot = attest::eventlog::secure_boot_enabled(log);
  return out;
}

void replay_boot_log(const protocol::AttestRequest& req, const PcrSelection& selection,
                     Claimed& claimed, Findings& f) {
  if (!req.boot_log.empty()) {
    auto log = attest::eventlog::parse(req.boot_log);
    auto replayed =
        log ? attest::eventlog::replay(*log) : Result<attest::eventlog::Replay>(fail(log.error()));
    if (!replayed) {
      f.refuse(ErrorCode::kMalformed, "boot log", replayed.error().message);
    } else {
      claimed.pcrs = std::move(replayed->pcrs);
      for (const auto& m : attest::eventlog::check_digests(*log))
        f.refuse(ErrorCode::kReplayMismatch, "boot event " + std::to_string(m.index), m.reason);
      claimed.boot_log = std::move(*log);
      return;
    }
  }
  // No usable log: PCRs the firmware did not touch are zero.
  for (const PcrBank& b : selection.banks) {
    if (!claimed.pcrs.has_bank(b.alg)) claimed.pcrs.init_bank(b.alg);
  }
}

// The banks the IMA replay keeps: those quoted for PCR 10, plus those of the carried state (it
// stays whole, so a later quote of them still verifies). Each bank costs two digests per entry.
std::vector<TpmAlg> ima_banks(const PcrSelection& selection, const PcrValues& carried) {
  std::vector<TpmAlg> banks;
  auto add = [&](TpmAlg alg) {
    if (std::find(banks.begin(), banks.end(), alg) == banks.end()) banks.push_back(alg);
  };
  for (const PcrBank& b : selection.banks) {
    if (b.pcrs.test(kImaPcr)) add(b.alg);
  }
  for (TpmAlg alg : carried.banks()) add(alg);
  if (banks.empty()) banks = ima::ReplayOptions{}.banks;  // PCR 10 not quoted (refused anyway)
  return banks;
}

// Continues the device's IMA replay with this upload. kInternal-class errors (a corrupt stored
// state) are returned; everything the device can get wrong is a refusal.
Status replay_ima(const protocol::AttestRequest& req, const Device& device, bool rebooted,
                  const PcrSelection& selection, Claimed& claimed, Findings& f) {
  if (!req.ima) return ok();
  if (!std::any_of(selection.banks.begin(), selection.banks.end(),
                   [](const PcrBank& b) { return b.pcrs.test(kImaPcr); })) {
    f.refuse(ErrorCode::kPcrSelectionMismatch, "PCR 10", "not quoted", "quoted with an IMA list");
  }
  // Offset 0 is the whole list, evidence on its own: accepted at any time and replayed from the
  // start (an agent that restarted, or one refused because the stored state lacks a bank now
  // quoted, starts over this way).
  const bool restart = rebooted || device.ima_state.empty() || req.ima->offset == 0;
  const std::uint64_t expected_offset = restart ? 0 : device.ima_entries;
  if (req.ima->offset != expected_offset) {
    f.refuse(ErrorCode::kInvalidArgument, "ima offset", std::to_string(req.ima->offset),
             std::to_string(expected_offset));
    return ok();
  }
  // A binary list is parsed into views of the request's bytes (which outlive `claimed`).
  Result<std::vector<ima::EntryView>> entries = std::vector<ima::EntryView>{};
  if (req.ima->format == protocol::ImaFormat::kAscii) {
    auto owned = ima::parse_ascii(warden::to_string(req.ima->entries));
    if (owned) {
      claimed.ima_ascii = std::move(*owned);
      entries = ima::views(claimed.ima_ascii);
    } else {
      entries = fail(std::move(owned).error());
    }
  } else {
    entries = ima::parse_binary_view(req.ima->entries);
  }
  if (!entries) {
    f.refuse(ErrorCode::kMalformed, "ima", entries.error().message);
    return ok();
  }
  ima::ReplayOptions opts;
  opts.rule = bank_rule(req.kernel_version);
  ima::ReplayState start;
  if (!restart) {
    auto pcrs = decode_ima_state(device.ima_state);
    if (!pcrs) return fail(std::move(pcrs).error().context("attest: stored IMA state"));
    start = ima::ReplayState{device.ima_entries, std::move(*pcrs)};
  }
  opts.banks = ima_banks(selection, start.pcrs);
  if (restart) start = ima::initial_state(opts);
  // The list grows while the TPM quotes: a reported PCR 10 finds the prefix that was quoted (the
  // value itself is trusted only through the quote's digest).
  const protocol::PcrValue* hint = nullptr;
  for (const auto& v : req.pcr_values) {
    auto bank = hash_from_tpm_id(v.alg);
    if (v.pcr == kImaPcr && bank && selected(selection, *bank, kImaPcr)) hint = &v;
  }
  auto result = hint != nullptr
                    ? ima::replay_to_quote(*entries, std::move(start), *hash_from_tpm_id(hint->alg),
                                           hint->digest, kImaPcr, opts)
                    : ima::replay(*entries, std::move(start), opts);
  if (!result) {
    f.refuse(result.error().code, "ima", result.error().message);
    return ok();
  }
  for (const auto& p : result->problems)
    f.refuse(p.code, "ima entry " + std::to_string(p.index), p.message);
  const auto covered = static_cast<std::size_t>(result->state.entries - req.ima->offset);
  entries->resize(std::min(entries->size(), covered));
  claimed.ima_entries = std::move(*entries);
  take_pcr(claimed.pcrs, result->state.pcrs, selection, kImaPcr);
  claimed.ima_state = std::move(result->state);
  return ok();
}

void replay_cel(const protocol::AttestRequest& req, const PcrSelection& selection, Claimed& claimed,
                Findings& f) {
  if (!req.cel) return;
  auto records = attest::cel::decode(*req.cel);
  if (!records) {
    f.refuse(ErrorCode::kMalformed, "cel", records.error().message);
    return;
  }
  // The agent's container PCR is configurable: the records name it, and must all agree.
  const unsigned pcr = records->empty() ? attest::cel::kDefaultContainerPcr : records->front().pcr;
  PcrValues start;
  for (const PcrBank& b : selection.banks) start.init_bank(b.alg);
  auto replayed = attest::cel::replay(*records, std::move(start), {.pcr = pcr});
  if (!replayed) {
    f.refuse(ErrorCode::kMalformed, "cel", replayed.error().message);
    return;
  }
  for (const auto& p : replayed->problems) f.refuse(ErrorCode::kReplayMismatch, "cel", p);
  take_pcr(claimed.pcrs, replayed->pcrs, selection, pcr);
  claimed.containers = std::move(*records);
}

// The key tokens will be bound to: the session key the binding key certified, else the binding
// key. nullopt (with refusals) when either does not hold up.
std::optional<token::Jwk> bound_key(const protocol::AttestRequest& req, const q::PublicArea& ak,
                                    Findings& f) {
  auto binding = q::parse_public2b(req.binding_key.public_area);
  if (!binding) {
    f.refuse(ErrorCode::kMalformed, "binding key", binding.error().message);
    return std::nullopt;
  }
  if (auto attrs = q::check_binding_key_attributes(*binding); !attrs) {
    f.refuse(attrs.error().code, "binding key", attrs.error().message);
    return std::nullopt;
  }
  if (auto cert = q::verify_certify(ak, req.binding_key.certify.attest,
                                    req.binding_key.certify.signature, req.nonce, *binding);
      !cert) {
    f.refuse(cert.error().code, "binding key certify", cert.error().message);
    return std::nullopt;
  }
  if (!req.session_key) {
    auto pkey = q::public_key(*binding);
    auto jwk = pkey ? token::Jwk::from_pkey(pkey->get()) : Result<token::Jwk>(fail(pkey.error()));
    if (!jwk) {
      f.refuse(ErrorCode::kUnsupported, "binding key", jwk.error().message);
      return std::nullopt;
    }
    return std::move(*jwk);
  }
  auto obj = json::parse_object(req.session_key->jwk);
  auto jwk = obj ? token::Jwk::from_json(*obj) : Result<token::Jwk>(fail(obj.error()));
  if (!jwk || jwk->kty() != "EC" || jwk->crv() != "P-256") {
    f.refuse(ErrorCode::kUnsupported, "session key",
             jwk ? "key type " + jwk->kty() + " " + jwk->crv() : jwk.error().message, "EC P-256");
    return std::nullopt;
  }
  auto sig = q::parse_signature(req.session_key->signature);
  if (!sig) {
    f.refuse(ErrorCode::kMalformed, "session key signature", sig.error().message);
    return std::nullopt;
  }
  auto jkt = base64url_decode(jwk->thumbprint());
  auto verified = q::verify_signature(
      *binding, protocol::session_key_signed_bytes(req.nonce, jkt.value_or(Bytes{})), *sig);
  if (!verified) {
    f.refuse(ErrorCode::kBadSignature, "session key signature", verified.error().message);
    return std::nullopt;
  }
  return std::move(*jwk);
}

// The reasons of evidence that changed nothing (not signed by the device's AK, not fresh, or
// replayed): anyone who knows a device id can send it again and again, with fields of their
// choosing, so its audit record holds a bounded number of reasons, each cut short.
std::string unvouched_reasons_json(std::vector<Reason> reasons) {
  constexpr std::size_t kMaxReasons = 16;
  constexpr std::size_t kMaxText = 128;
  if (reasons.size() > kMaxReasons) {
    const std::size_t dropped = reasons.size() - (kMaxReasons - 1);
    reasons.resize(kMaxReasons - 1);
    reasons.push_back({"limit_exceeded", "reasons", std::nullopt,
                       std::to_string(dropped) + " more not recorded"});
  }
  auto cut = [](std::string& text) {
    if (text.size() <= kMaxText) return;
    const std::size_t n = text.size();
    text.resize(kMaxText);
    text += "…(" + std::to_string(n) + " bytes)";
  };
  for (Reason& r : reasons) {
    cut(r.code);
    cut(r.subject);
    if (r.expected) cut(*r.expected);
    if (r.found) cut(*r.found);
  }
  return reasons_to_json(reasons);
}

}  // namespace

Result<protocol::AttestResponse> Service::attest(const protocol::AttestRequest& req,
                                                 ByteSpan received) {
  const std::int64_t t = now();
  WARDEN_ASSIGN(device, options_.store->get_device(req.device_id));
  if (device.state != DeviceState::kEnabled)
    return fail(ErrorCode::kRevoked, "attest: device " + device.id + " is revoked");
  WARDEN_ASSIGN(policy, active_policy());
  auto selection = PcrSelection::parse(req.pcr_selection);
  if (!selection) return fail(std::move(selection).error().context("attest: pcr_selection"));
  WARDEN_ASSIGN(ak, q::parse_public2b(device.ak_public));
  // The bytes as received: re-encoding a 160 KB request only to hash it cost ~8% of an
  // attestation, and the received bytes are what an archived copy of the evidence would match.
  const std::string evidence_hash = hex_encode(ossl::sha256(received));
  Findings f;

  // Freshness. The nonce is consumed below, once the quote proves the AK signed it.
  auto fresh = nonces_.check(req.nonce, device.id);
  if (!fresh) {
    f.refuse(
        fresh.error().code == ErrorCode::kExpired ? ErrorCode::kExpired : ErrorCode::kNonceMismatch,
        "nonce", fresh.error().message);
  }

  // The quote header, unverified until verify_quote: resetCount decides the IMA state.
  auto header = q::parse_attest(req.quote.attest);
  const bool rebooted =
      header && device.reset_count && header->clock_info.reset_count > *device.reset_count;

  Claimed claimed;
  replay_boot_log(req, *selection, claimed, f);
  WARDEN_TRY_STATUS(replay_ima(req, device, rebooted, *selection, claimed, f));
  replay_cel(req, *selection, claimed, f);

  // clockInfo.safe only says the TPM clock may have gone back (after a disorderly shutdown);
  // freshness here comes from the nonce, not the clock, so it is a note, not a refusal.
  auto quote = q::verify_quote(
      ak, req.quote.attest, req.quote.signature,
      {.nonce = req.nonce, .selection = *selection, .pcrs = &claimed.pcrs, .require_safe = false});
  // Signed by this device's AK (the checks after the signature failed or passed).
  bool authentic = static_cast<bool>(quote);
  if (quote) {
    if (!quote->attest.clock_info.safe) f.note("clock_not_safe", "clockInfo.safe", "1", "0");
  } else {
    const ErrorCode c = quote.error().code;
    authentic = c == ErrorCode::kPcrSelectionMismatch || c == ErrorCode::kPcrDigestMismatch;
    if (c == ErrorCode::kPcrDigestMismatch && header) {
      auto hash = hash_from_tpm_id(ak.scheme_hash);
      auto detail = attest::eventlog::check_replay_against_quote(
          claimed.pcrs, header->pcr_selection, header->pcr_digest,
          to_ossl(hash.value_or(TpmAlg::kSha256)));
      f.refuse(ErrorCode::kReplayMismatch, "quote",
               detail ? quote.error().message : detail.error().message);
    } else {
      f.refuse(c, "quote", quote.error().message);
    }
  }
  for (const auto& rule : policy->reference.pcrs) {
    if (!selected(*selection, rule.bank, rule.index)) {
      f.refuse(ErrorCode::kPcrSelectionMismatch,
               "PCR " + std::string(hash_name(rule.bank)) + ":" + std::to_string(rule.index),
               "not quoted", "quoted (the policy names it)");
    }
  }
  // Only authentic, fresh evidence may consume the nonce and change the device's record.
  // The nonce is consumed in the transaction that records the outcome (below).
  authentic = authentic && fresh;

  // The policy sees only values the quote vouched for.
  if (quote) {
    if (claimed.ima_state && req.ima->offset == 0 && !claimed.ima_entries.empty() &&
        claimed.ima_entries.front().path == "boot_aggregate") {
      auto agg = ima::check_boot_aggregate(claimed.ima_entries.front(), claimed.pcrs);
      if (!agg) f.refuse(agg.error().code, "ima boot_aggregate", agg.error().message);
    }
    std::optional<attest::policy::BootEvidence> boot;
    if (claimed.boot_log) boot = boot_evidence(*claimed.boot_log);
    auto verdict = attest::policy::appraise(
        policy->reference,
        {&claimed.pcrs, boot ? &*boot : nullptr, claimed.ima_entries, claimed.containers});
    for (auto& r : verdict.reasons) {
      f.refusals.push_back(
          {std::move(r.code), std::move(r.subject), std::move(r.expected), std::move(r.found)});
    }
  }

  std::optional<token::Jwk> cnf_key = bound_key(req, ak, f);

  // Counters only move forward; a higher resetCount is a reboot. Kept apart: a replay found when
  // the outcome is recorded voids them (only fresh evidence may judge the counters).
  Findings counters;
  bool counters_went_back = false;
  if (authentic && device.reset_count) {
    const auto& ci = header->clock_info;
    if (ci.reset_count < *device.reset_count) {
      counters_went_back = true;
      counters.refuse(ErrorCode::kPolicyViolation, "resetCount", std::to_string(ci.reset_count),
                      ">= " + std::to_string(*device.reset_count));
    } else if (rebooted) {
      counters.note("reboot", "resetCount", std::to_string(*device.reset_count),
                    std::to_string(ci.reset_count));
    } else if (device.restart_count && ci.restart_count < *device.restart_count) {
      counters_went_back = true;
      counters.refuse(ErrorCode::kPolicyViolation, "restartCount", std::to_string(ci.restart_count),
                      ">= " + std::to_string(*device.restart_count));
    }
  }

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
  AuditRecord record{0,
                     t,
                     device.id,
                     "attest",
                     pass ? "accept" : "reject",
                     evidence_hash,
                     policy->reference.version,
                     reasons_to_json(all)};
  bool recorded = false;
  if (authentic) {
    AttestationUpdate u;
    u.reset_count = counters_went_back
                        ? device.reset_count
                        : std::optional<std::uint64_t>(header->clock_info.reset_count);
    u.restart_count = counters_went_back
                          ? device.restart_count
                          : std::optional<std::uint64_t>(header->clock_info.restart_count);
    u.attested_at = t;
    u.verdict = pass ? "accept" : "reject";
    u.reasons_json = record.reasons_json;
    if (pass) {
      u.binding_key_public = req.binding_key.public_area;
      if (claimed.ima_state) {
        u.ima_entries = claimed.ima_state->entries;
        u.ima_state = encode_ima_state(claimed.ima_state->pcrs);
      } else if (rebooted) {
        u.ima_entries = 0;
        u.ima_state = Bytes{};
      }
    }
    auto outcome = options_.store->record_attestation_outcome(
        device.id, req.nonce, NonceIssuer::expiry(req.nonce), u, record);
    forget_device(device.id);
    if (outcome) {
      recorded = true;
    } else {
      if (outcome.error().code != ErrorCode::kReplay) return fail(std::move(outcome).error());
      f.refuse(ErrorCode::kReplay, "nonce", outcome.error().message);
      pass = false;
      all = reasons_of(false);
      record.decision = "reject";
      record.reasons_json = reasons_to_json(all);
    }
  }
  if (!recorded) {
    record.reasons_json = unvouched_reasons_json(all);
    audit_refusal(std::move(record));
  }

  protocol::AttestResponse out;
  out.verdict = pass ? protocol::Verdict::kPass : protocol::Verdict::kFail;
  out.policy_version = policy->reference.version;
  out.ima_next_offset = !pass               ? device.ima_entries
                        : claimed.ima_state ? claimed.ima_state->entries
                        : rebooted          ? 0
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
  return out;
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
