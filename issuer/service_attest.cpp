// attest(): verify the quote and the logs it covers, appraise, and mint the device result token.
#include <algorithm>
#include <charconv>

#include "attest/cel/cel.h"
#include "attest/eventlog/eventlog.h"
#include "attest/protocol/limits.h"
#include "attest/ima/ima.h"
#include "attest/quote/quote.h"
#include "attest/token/cwt.h"
#include "attest/token/json.h"
#include "issuer/service_impl.h"
#include "platform/base/encoding.h"

namespace warden::issuer {
namespace {

namespace q = attest::quote;
using attest::PcrValues;
using protocol::Reason;

constexpr unsigned kImaPcr = 10;

std::string code(ErrorCode c) { return std::string(to_string(c)); }

bool selected(const PcrSelection& s, TpmAlg bank, unsigned index) {
  return std::any_of(s.banks.begin(), s.banks.end(), [&](const PcrBank& b) {
    return b.alg == bank && index < kPcrCount && b.pcrs.test(index);
  });
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
attest::ima::BankRule bank_rule(const std::optional<std::string>& kernel) {
  if (!kernel) return attest::ima::BankRule::kTemplateDataHash;
  int major = 0, minor = 0;
  const char* p = kernel->data();
  const char* end = p + kernel->size();
  auto r1 = std::from_chars(p, end, major);
  if (r1.ec == std::errc() && r1.ptr < end && *r1.ptr == '.') std::from_chars(r1.ptr + 1, end, minor);
  if (major > 0 && (major < 5 || (major == 5 && minor < 8)))
    return attest::ima::BankRule::kPaddedSha1;
  return attest::ima::BankRule::kTemplateDataHash;
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

}  // namespace

Result<protocol::AttestResponse> Service::attest(const protocol::AttestRequest& req) {
  const std::int64_t t = now();
  WARDEN_ASSIGN(device, options_.store->get_device(req.device_id));
  if (device.state != DeviceState::kEnabled)
    return fail(ErrorCode::kRevoked, "attest: device " + device.id + " is revoked");
  WARDEN_ASSIGN(policy, active_policy());
  auto selection = PcrSelection::parse(req.pcr_selection);
  if (!selection) return fail(std::move(selection).error().context("attest: pcr_selection"));
  WARDEN_ASSIGN(ak, q::parse_public2b(device.ak_public));
  const std::string evidence_hash = hex_encode(ossl::sha256(protocol::encode(req)));

  std::vector<Reason> reasons;  // refusals
  std::vector<Reason> notes;    // accepted, but worth telling (reboots)
  auto refuse = [&](ErrorCode c, std::string subject, std::string found,
                    std::optional<std::string> expected = std::nullopt) {
    reasons.push_back({code(c), std::move(subject), std::move(expected), std::move(found)});
  };

  // Freshness. The nonce is consumed below, once the quote proves the AK signed it.
  auto fresh = nonces_.check(req.nonce, device.id);
  if (!fresh) {
    refuse(fresh.error().code == ErrorCode::kExpired ? ErrorCode::kExpired
                                                     : ErrorCode::kNonceMismatch,
           "nonce", fresh.error().message);
  }

  // The quote header, unverified until verify_quote: reset counters decide the IMA state.
  auto header = q::parse_attest(req.quote.attest);
  const bool rebooted = header && device.reset_count &&
                        header->clock_info.reset_count > *device.reset_count;

  // ---- The PCR values the logs claim ----
  PcrValues claimed;
  std::optional<attest::eventlog::EventLog> boot_log;
  if (!req.boot_log.empty()) {
    auto log = attest::eventlog::parse(req.boot_log);
    auto replayed = log ? attest::eventlog::replay(*log) : Result<attest::eventlog::Replay>(
                                                               fail(log.error()));
    if (!replayed) {
      refuse(ErrorCode::kMalformed, "boot log", replayed.error().message);
    } else {
      claimed = std::move(replayed->pcrs);
      for (const auto& m : attest::eventlog::check_digests(*log))
        refuse(ErrorCode::kReplayMismatch, "boot event " + std::to_string(m.index), m.reason);
      boot_log = std::move(*log);
    }
  }
  for (const PcrBank& b : selection->banks) {
    if (!claimed.has_bank(b.alg) && req.boot_log.empty()) claimed.init_bank(b.alg);
  }

  std::vector<attest::ima::Entry> ima_entries;
  std::optional<attest::ima::ReplayState> ima_state;
  std::size_t ima_new = 0;
  if (req.ima) {
    const bool restart = rebooted || device.ima_state.empty();
    attest::ima::ReplayOptions opts;
    opts.rule = bank_rule(req.kernel_version);
    auto parsed = req.ima->format == protocol::ImaFormat::kAscii
                      ? attest::ima::parse_ascii(warden::to_string(req.ima->entries))
                      : attest::ima::parse_binary(req.ima->entries);
    std::optional<attest::ima::ReplayState> start;
    if (!parsed) {
      refuse(ErrorCode::kMalformed, "ima", parsed.error().message);
    } else if (restart && req.ima->offset != 0) {
      refuse(ErrorCode::kInvalidArgument, "ima offset", std::to_string(req.ima->offset), "0");
    } else if (!restart && req.ima->offset != device.ima_entries) {
      refuse(ErrorCode::kInvalidArgument, "ima offset", std::to_string(req.ima->offset),
             std::to_string(device.ima_entries));
    } else if (restart) {
      start = attest::ima::initial_state(opts);
    } else {
      auto pcrs = decode_ima_state(device.ima_state);
      if (!pcrs) return fail(std::move(pcrs).error().context("attest: stored IMA state"));
      start = attest::ima::ReplayState{device.ima_entries, std::move(*pcrs)};
    }
    if (start) {
      ima_entries = std::move(*parsed);
      // The list grows while the TPM quotes: a reported PCR 10 finds the prefix that was quoted
      // (the value itself is trusted only through the quote's digest below).
      const protocol::PcrValue* hint = nullptr;
      for (const auto& v : req.pcr_values) {
        auto bank = hash_from_tpm_id(v.alg);
        if (v.pcr == kImaPcr && bank && selected(*selection, *bank, kImaPcr)) hint = &v;
      }
      auto result = hint != nullptr
                        ? attest::ima::replay_to_quote(ima_entries, std::move(*start),
                                                       *hash_from_tpm_id(hint->alg), hint->digest,
                                                       kImaPcr, opts)
                        : attest::ima::replay(ima_entries, std::move(*start), opts);
      if (!result) {
        refuse(result.error().code, "ima", result.error().message);
      } else {
        for (const auto& p : result->problems)
          refuse(p.code, "ima entry " + std::to_string(p.index), p.message);
        ima_new = static_cast<std::size_t>(result->state.entries - req.ima->offset);
        ima_entries.resize(std::min(ima_entries.size(), ima_new));
        for (const PcrBank& b : selection->banks) {
          const Bytes* v = result->state.pcrs.get(b.alg, kImaPcr);
          if (v != nullptr && claimed.has_bank(b.alg)) (void)claimed.set(b.alg, kImaPcr, *v);
        }
        ima_state = std::move(result->state);
      }
    }
    if (!std::any_of(selection->banks.begin(), selection->banks.end(),
                     [](const PcrBank& b) { return b.pcrs.test(kImaPcr); })) {
      refuse(ErrorCode::kPcrSelectionMismatch, "PCR 10", "not quoted", "quoted with an IMA list");
    }
  }

  std::vector<attest::cel::Record> containers;
  if (req.cel) {
    auto records = attest::cel::decode(*req.cel);
    PcrValues start;
    for (const PcrBank& b : selection->banks) start.init_bank(b.alg);
    auto replayed = records ? attest::cel::replay(*records, std::move(start))
                            : Result<attest::cel::ReplayResult>(fail(records.error()));
    if (!replayed) {
      refuse(ErrorCode::kMalformed, "cel", replayed.error().message);
    } else {
      for (const auto& p : replayed->problems) refuse(ErrorCode::kReplayMismatch, "cel", p);
      for (const PcrBank& b : selection->banks) {
        const Bytes* v = replayed->pcrs.get(b.alg, attest::cel::kDefaultContainerPcr);
        if (v != nullptr && claimed.has_bank(b.alg))
          (void)claimed.set(b.alg, attest::cel::kDefaultContainerPcr, *v);
      }
      containers = std::move(*records);
    }
  }

  // ---- The quote ----
  bool authentic = false;  // signed by this device's AK over the nonce we issued
  bool replay_ok = false;
  // clockInfo.safe only says the TPM clock may have gone back (after a disorderly shutdown);
  // freshness here comes from the nonce, not the clock, so it is a note, not a refusal.
  auto quote = q::verify_quote(ak, req.quote.attest, req.quote.signature,
                               {.nonce = req.nonce,
                                .selection = *selection,
                                .pcrs = &claimed,
                                .require_safe = false});
  if (quote && !quote->attest.clock_info.safe)
    notes.push_back({"clock_not_safe", "clockInfo.safe", std::string("1"), std::string("0")});
  if (quote) {
    authentic = replay_ok = true;
  } else {
    const ErrorCode c = quote.error().code;
    authentic = c == ErrorCode::kPcrSelectionMismatch || c == ErrorCode::kPcrDigestMismatch ||
                c == ErrorCode::kPolicyViolation;
    if (c == ErrorCode::kPcrDigestMismatch && header) {
      auto hash = hash_from_tpm_id(ak.scheme_hash);
      auto detail = attest::eventlog::check_replay_against_quote(
          claimed, header->pcr_selection, header->pcr_digest,
          to_ossl(hash.value_or(TpmAlg::kSha256)));
      refuse(ErrorCode::kReplayMismatch, "quote",
             detail ? quote.error().message : detail.error().message);
    } else {
      refuse(c, "quote", quote.error().message);
    }
  }
  for (const auto& rule : policy->reference.pcrs) {
    if (!selected(*selection, rule.bank, rule.index)) {
      refuse(ErrorCode::kPcrSelectionMismatch,
             "PCR " + std::string(hash_name(rule.bank)) + ":" + std::to_string(rule.index),
             "not quoted", "quoted (the policy names it)");
    }
  }
  if (authentic && fresh) {
    auto consumed = options_.store->consume_nonce(device.id, req.nonce, NonceIssuer::expiry(req.nonce));
    if (!consumed) {
      if (consumed.error().code != ErrorCode::kReplay) return fail(std::move(consumed).error());
      refuse(ErrorCode::kReplay, "nonce", consumed.error().message);
      authentic = false;
    }
  } else {
    authentic = false;
  }

  // ---- Counters ----
  bool counters_went_back = false;
  if (header && authentic && device.reset_count) {
    const auto& ci = header->clock_info;
    if (ci.reset_count < *device.reset_count) {
      counters_went_back = true;
      refuse(ErrorCode::kPolicyViolation, "resetCount", std::to_string(ci.reset_count),
             ">= " + std::to_string(*device.reset_count));
    } else if (rebooted) {
      notes.push_back({"reboot", "resetCount", std::to_string(*device.reset_count),
                       std::to_string(ci.reset_count)});
    } else if (device.restart_count && ci.restart_count < *device.restart_count) {
      counters_went_back = true;
      refuse(ErrorCode::kPolicyViolation, "restartCount", std::to_string(ci.restart_count),
             ">= " + std::to_string(*device.restart_count));
    }
  }

  // ---- Appraisal of values the quote vouched for ----
  if (replay_ok) {
    if (ima_state && req.ima->offset == 0 && !ima_entries.empty() &&
        ima_entries.front().path == "boot_aggregate") {
      auto agg = attest::ima::check_boot_aggregate(ima_entries.front(), claimed);
      if (!agg) refuse(agg.error().code, "ima boot_aggregate", agg.error().message);
    }
    std::optional<attest::policy::BootEvidence> boot;
    if (boot_log) boot = boot_evidence(*boot_log);
    attest::policy::Evidence evidence{&claimed, boot ? &*boot : nullptr, ima_entries, containers};
    auto verdict = attest::policy::appraise(policy->reference, evidence);
    for (auto& r : verdict.reasons)
      reasons.push_back({std::move(r.code), std::move(r.subject), std::move(r.expected),
                         std::move(r.found)});
  }

  // ---- The binding key and the session key it certifies ----
  std::optional<token::Jwk> cnf_key;
  auto binding = q::parse_public2b(req.binding_key.public_area);
  if (!binding) {
    refuse(ErrorCode::kMalformed, "binding key", binding.error().message);
  } else if (auto attrs = q::check_binding_key_attributes(*binding); !attrs) {
    refuse(attrs.error().code, "binding key", attrs.error().message);
  } else if (auto cert = q::verify_certify(ak, req.binding_key.certify.attest,
                                           req.binding_key.certify.signature, req.nonce, *binding);
             !cert) {
    refuse(cert.error().code, "binding key certify", cert.error().message);
  } else if (req.session_key) {
    auto obj = json::parse_object(req.session_key->jwk);
    auto jwk = obj ? token::Jwk::from_json(*obj) : Result<token::Jwk>(fail(obj.error()));
    auto sig = q::parse_signature(req.session_key->signature);
    if (!jwk || jwk->kty() != "EC" || jwk->crv() != "P-256") {
      refuse(ErrorCode::kUnsupported, "session key",
             jwk ? "key type " + jwk->kty() + " " + jwk->crv() : jwk.error().message,
             "EC P-256");
    } else if (!sig) {
      refuse(ErrorCode::kMalformed, "session key signature", sig.error().message);
    } else {
      auto jkt = base64url_decode(jwk->thumbprint());
      auto ok_sig = q::verify_signature(
          *binding, protocol::session_key_signed_bytes(req.nonce, jkt.value_or(Bytes{})), *sig);
      if (!ok_sig) {
        refuse(ErrorCode::kBadSignature, "session key signature", ok_sig.error().message);
      } else {
        cnf_key = std::move(*jwk);
      }
    }
  } else {
    auto pkey = q::public_key(*binding);
    auto jwk = pkey ? token::Jwk::from_pkey(pkey->get()) : Result<token::Jwk>(fail(pkey.error()));
    if (!jwk) {
      refuse(ErrorCode::kUnsupported, "binding key", jwk.error().message);
    } else {
      cnf_key = std::move(*jwk);
    }
  }

  // ---- Decision ----
  const bool pass = reasons.empty();
  std::vector<Reason> all = reasons;
  all.insert(all.end(), notes.begin(), notes.end());
  if (authentic) {
    AttestationUpdate u;
    // Counters only move forward: a quote from an older boot never lowers them.
    u.reset_count = counters_went_back ? device.reset_count
                                       : std::optional<std::uint64_t>(header->clock_info.reset_count);
    u.restart_count = counters_went_back
                          ? device.restart_count
                          : std::optional<std::uint64_t>(header->clock_info.restart_count);
    u.attested_at = t;
    u.verdict = pass ? "accept" : "reject";
    u.reasons_json = reasons_to_json(all);
    if (pass) {
      u.binding_key_public = req.binding_key.public_area;
      if (ima_state) {
        u.ima_entries = ima_state->entries;
        u.ima_state = encode_ima_state(ima_state->pcrs);
      } else if (rebooted) {
        u.ima_entries = 0;
        u.ima_state = Bytes{};
      }
    }
    WARDEN_TRY_STATUS(options_.store->record_attestation(device.id, u));
  }
  audit({0, t, device.id, "attest", pass ? "accept" : "reject", evidence_hash,
         policy->reference.version, reasons_to_json(all)});

  protocol::AttestResponse out;
  out.verdict = pass ? protocol::Verdict::kPass : protocol::Verdict::kFail;
  out.policy_version = policy->reference.version;
  out.ima_next_offset = pass && ima_state ? ima_state->entries
                                          : (pass && rebooted ? 0 : device.ima_entries);
  if (all.size() > protocol::limits::kReasons) {
    const std::size_t dropped = all.size() - (protocol::limits::kReasons - 1);
    all.resize(protocol::limits::kReasons - 1);
    all.push_back({"limit_exceeded", "reasons", std::nullopt,
                   std::to_string(dropped) + " more (see the audit log)"});
  }
  out.reasons = std::move(all);
  if (!pass) return out;

  token::Claims c;
  c.iss = options_.issuer_url.empty() ? "warden-issuer" : options_.issuer_url;
  c.sub = device.id;
  c.iat = t;
  c.exp = t + options_.config->tokens.device_token_ttl_s;
  c.jti = random_id();
  c.cnf = token::Confirmation{cnf_key->thumbprint(), *cnf_key};
  c.device_id = device.id;
  WARDEN_ASSIGN(evidence_bytes, hex_decode(evidence_hash));
  c.attestation = token::AttestationResult{true, policy->reference.version, evidence_bytes};
  c.eat_nonce = req.nonce;
  c.eat_profile = std::string(token::kEatProfile);
  WARDEN_ASSIGN(signer, IssuerSigner::current(*options_.keys));
  WARDEN_ASSIGN(cwt, token::mint_cwt(signer, c));
  out.device_token = std::move(cwt);
  out.expires_at = static_cast<std::uint64_t>(*c.exp);
  return out;
}

}  // namespace warden::issuer
